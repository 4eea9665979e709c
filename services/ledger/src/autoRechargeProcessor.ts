import { StoredProductInvalidError } from '@tally/catalog';
import { balanceIdOfStream, fromStoredLedgerEvent, TallyError, type Micros } from '@tally/domain';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import {
  createCheckpointedProcessor,
  createPostgresCheckpointStore,
  isTransientError,
  type CheckpointedProcessor,
  type ProcessorLease,
  type ProcessorMetrics,
} from '@tally/runtime';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { monthOf, type AutoRecharges } from './autoRecharges';
import { BundleNotFoundError, PurchaseTermsChangedError } from './ledgerErrors';
import type { LedgerService } from './ledgerService';
import type { PurchaseService } from './purchaseService';

/** The processor's (and its lease's and checkpoint row's) name. */
export const AUTO_RECHARGE_PROCESSOR = 'auto-recharge';

interface AutoRechargeProcessorOptions {
  readonly eventStore: EventStore;
  /** Holds the checkpoint (subscription_checkpoints) and the lease. */
  readonly pool: Pool;
  readonly recharges: Pick<AutoRecharges, 'ofBalances' | 'recordOutcome' | 'purchasesInMonth'>;
  readonly purchases: Pick<PurchaseService, 'autoRecharge'>;
  readonly ledger: Pick<LedgerService, 'getBalance' | 'storedPurchase'>;
  readonly logger: Logger;
  readonly lease?: Omit<ProcessorLease, 'pool'>;
  readonly batchSize?: number;
  readonly lagRefreshMs?: number;
  /** Where the lag and lease gauges and the outcomes' counter go (tally_auto_recharge*); none without it. */
  readonly metrics?: ProcessorMetrics['registry'];
  readonly clock?: () => Date;
}

/** What handling a warning came to, as `tally_auto_recharges_total` counts it. */
type Outcome = 'bought' | 'refused' | 'not_needed' | 'limited';

/**
 * A refusal as lastRefusal keeps it: why, and what to do. A refused warning is never handled again
 * (even once its cause is fixed), so the balance buys at its next warning only: the setting set
 * again answers belowWarningLimit, and true means top it up by hand.
 */
function refusalReason(error: TallyError): string {
  const fix =
    error instanceof PurchaseTermsChangedError
      ? 'setting the auto-recharge again accepts the new terms'
      : error instanceof StoredProductInvalidError
        ? 'once the product is repaired, set the auto-recharge again'
        : error instanceof BundleNotFoundError
          ? 'set the auto-recharge to a bundle the balance can buy'
          : 'once that is fixed, set the auto-recharge again';
  return `${error.message}; ${fix}; if it answers belowWarningLimit true, top the balance up by hand (this warning is not handled again)`;
}

/** A low-balance warning as the processor acts on it. */
interface Warning {
  readonly balanceId: string;
  readonly eventId: string;
  readonly position: bigint;
  /** The calendar month (monthOf) of the warning's stored time: the month its purchase counts in. */
  readonly month: string;
  readonly threshold: Micros;
}

/**
 * Buys a balance's auto-recharge bundle when its low-balance warning fires: the runtime's one
 * checkpointed processor over the event store's subscription (either store), one process at a
 * time through a lease, so it resumes from its checkpoint after a restart.
 *
 * Once per warning: the purchase's command id derives from the warning's ledger event id, so a
 * batch handed over again (a crash before the checkpoint was saved, a deposed lease holder) finds
 * the purchase stored, buys nothing more and counts it as bought. Only warnings stored after the
 * auto-recharge was first set act (its `sincePosition`, which a replacement keeps), so setting it
 * never buys for the past. A warning whose balance is back at or above the limit by the time it is
 * handled (a top-up since) buys nothing. A purchase refused for good (the bundle gone from the
 * catalog, or off the purchase options for a setting made on the portal, its credits or price not
 * the terms it was set at, the amount too large) is
 * logged, kept as the setting's lastRefusal and left, never stalling the warnings behind it; an
 * unavailable store is retried by the processor. A product stored invalid (a hand edit the
 * catalog's validation refuses) is refused for good too: retried, it would hold every other
 * balance's warning behind it until an operator repairs it, as warnings are handled in order.
 *
 * A monthly limit counts the purchases made for the warnings of the warning's own calendar month
 * (UTC, by its stored time, not the clock), each once by its warning's id: a batch handled again
 * counts and decides as it did the first time.
 */
export function createAutoRechargeProcessor(options: AutoRechargeProcessorOptions): CheckpointedProcessor {
  const logger = options.logger.child({ module: 'autoRechargeProcessor' });
  const clock = options.clock ?? (() => new Date());
  const outcomes = options.metrics?.counter({
    name: 'tally_auto_recharges_total',
    help: 'Low-balance warnings the auto-recharge processor handled for a balance with an auto-recharge, by outcome (a purchase found stored again is not counted)',
    labelNames: ['outcome'] as const,
  });
  const count = (outcome: Outcome) => outcomes?.inc({ outcome });

  function warningsOf(events: readonly RecordedEvent[]): Warning[] {
    const warnings: Warning[] = [];
    for (const recorded of events) {
      if (recorded.type !== 'LowBalanceWarned') continue;
      const balanceId = balanceIdOfStream(recorded.streamId);
      if (balanceId === undefined) continue;
      try {
        const event = fromStoredLedgerEvent(recorded);
        if (event.type === 'LowBalanceWarned') {
          warnings.push({ balanceId, eventId: recorded.id, position: recorded.position, month: monthOf(recorded.recordedAt), threshold: event.threshold });
        }
      } catch (error) {
        logger.warn({ err: error, eventId: recorded.id, streamId: recorded.streamId }, 'skipping a LowBalanceWarned event that cannot be decoded');
      }
    }
    return warnings;
  }

  async function handle(events: readonly RecordedEvent[]): Promise<void> {
    const warnings = warningsOf(events);
    if (warnings.length === 0) return;
    // With the batch's last position: a setting stored after this read acts only after it (see AutoRecharges.set).
    const settings = await options.recharges.ofBalances([...new Set(warnings.map((warning) => warning.balanceId))], events.at(-1)!.position);
    // The outcomes decided again when the batch is retried after a transient failure on a later
    // warning, counted once it is all handled. A purchase is counted when it is made instead: the
    // retry finds it stored (replayed) and counts nothing, so deferred it would never be counted.
    const handled: Outcome[] = [];
    // In ledger order: a balance warned twice in one batch recharges for each, in turn.
    for (const warning of warnings) {
      const setting = settings.get(warning.balanceId);
      if (setting === undefined || warning.position <= setting.sincePosition) continue;
      // A warning handled again whose purchase is stored (a crash before its outcome was kept, a
      // deposed lease holder) goes straight to the purchase, which answers it again and is counted
      // below: never found unneeded (the purchase itself may have lifted the balance), limited
      // (a later warning's purchase counted meanwhile) or refused (its bundle gone since). A
      // replaced setting keeps its `since`, so it may meet one too; a new one starts past them all.
      const bought = (await options.ledger.storedPurchase(warning.balanceId, { warningEventId: warning.eventId })) !== undefined;
      if (!bought && (await options.ledger.getBalance(warning.balanceId)).balance.balance >= warning.threshold) {
        logger.info({ balanceId: warning.balanceId, warningEventId: warning.eventId }, 'auto-recharge not needed: the balance is back at its warning limit');
        handled.push('not_needed');
        continue;
      }
      if (!bought && setting.monthlyLimit !== null && (await options.recharges.purchasesInMonth(warning.balanceId, warning.month, warning.eventId)) >= setting.monthlyLimit) {
        const reason = `the monthly limit is reached: ${setting.monthlyLimit} auto-recharge${setting.monthlyLimit === 1 ? '' : 's'} for the warnings of ${warning.month.slice(0, 7)}`;
        logger.warn({ balanceId: warning.balanceId, warningEventId: warning.eventId, monthlyLimit: setting.monthlyLimit }, 'auto-recharge not bought: its monthly limit is reached');
        handled.push('limited');
        await options.recharges.recordOutcome(warning.balanceId, { kind: 'refused', at: clock(), reason });
        continue;
      }
      try {
        // A setting made on the portal buys what the portal offers now, as it was checked when set,
        // and every setting with terms (all but those stored before migration 037) only at them.
        const request = {
          bundleId: setting.bundleId,
          quantity: setting.quantity,
          purchaseOptionsOnly: setting.purchaseOptionsOnly,
          ...(setting.terms !== null ? { expected: setting.terms } : {}),
        };
        const result = await options.purchases.autoRecharge(warning.balanceId, request, warning.eventId);
        logger.info({ balanceId: warning.balanceId, warningEventId: warning.eventId, bundleId: setting.bundleId, quantity: setting.quantity, replayed: result.replayed }, 'auto-recharged');
        if (!result.replayed) count('bought');
        // Kept after the purchase, which is the guarantee: a crash between them leaves this note
        // unwritten until the warning is handled again, which finds the purchase and its time.
        await options.recharges.recordOutcome(warning.balanceId, {
          kind: 'bought',
          at: result.events[0]?.recordedAt ?? clock(),
          warningEventId: warning.eventId,
          warningMonth: warning.month,
        });
      } catch (error) {
        if (!(error instanceof TallyError) || isTransientError(error)) throw error;
        logger.warn({ err: error, balanceId: warning.balanceId, warningEventId: warning.eventId, bundleId: setting.bundleId }, 'auto-recharge refused; the warning is left');
        handled.push('refused');
        await options.recharges.recordOutcome(warning.balanceId, { kind: 'refused', at: clock(), reason: refusalReason(error) });
      }
    }
    for (const outcome of handled) count(outcome);
  }

  return createCheckpointedProcessor({
    name: AUTO_RECHARGE_PROCESSOR,
    role: 'auto-recharge',
    eventStore: options.eventStore,
    checkpoints: createPostgresCheckpointStore(options.pool),
    lease: { pool: options.pool, ...options.lease },
    logger,
    what: 'recharging balances below their warning limit',
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.lagRefreshMs !== undefined ? { lagRefreshMs: options.lagRefreshMs } : {}),
    handle,
    metrics: options.metrics && {
      registry: options.metrics,
      lagEvents: { name: 'tally_auto_recharge_lag_events', help: 'Event store positions the auto-recharge processor has not handled yet' },
      lagSeconds: { name: 'tally_auto_recharge_lag_seconds', help: 'Age of the oldest event the auto-recharge processor has not handled yet' },
      leading: { name: 'tally_auto_recharge_processing', help: '1 while this process holds the auto-recharge lease and works, 0 while it stands by' },
    },
  });
}
