import { balanceIdOfStream, fromStoredLedgerEvent, HoldNotExpiredError, HoldNotOpenError } from '@tally/domain';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import {
  createCheckpointedProcessor,
  createPeriodicWorker,
  createWorker,
  withDeadline,
  type CheckpointStore,
  type ProcessorLag,
  type ProcessorLease,
  type ProcessorMetrics,
  type Worker,
} from '@tally/runtime';
import type { Logger } from 'pino';
import type { HoldExpiryIndex, HoldIndexChange } from './holdExpiryIndex';
import { HoldNotFoundError } from './ledgerErrors';
import type { LedgerService } from './ledgerService';

/** The longest a scrape waits for the oldest due expiry (tally_hold_expiry_overdue_seconds), by default. */
const OVERDUE_READ_TIMEOUT_MS = 1000;

interface HoldExpiryWorkerOptions {
  readonly eventStore: Pick<EventStore, 'subscribeToAll' | 'headPosition' | 'readAll'>;
  readonly checkpoints: CheckpointStore;
  readonly index: HoldExpiryIndex;
  readonly ledger: Pick<LedgerService, 'expireHold'>;
  readonly logger: Logger;
  /** Processes sharing it share one index checkpoint and take turns (one expires, the others stand by). */
  readonly lease?: ProcessorLease;
  /** The checkpoint's (and the lease's) name; default `hold-expiry`. */
  readonly name?: string;
  /** How often the leader looks for holds past their expiry; default 1000. */
  readonly pollIntervalMs?: number;
  /** Holds expired per look at most; default 100 (the next look takes the rest). */
  readonly batchSize?: number;
  readonly clock?: () => Date;
  /** The longest a scrape waits for the index's oldest due expiry; OVERDUE_READ_TIMEOUT_MS by default. For tests. */
  readonly overdueReadTimeoutMs?: number;
  /** The process's registry: the index's lag, whether this process leads, and how long the oldest hold past its expiry has waited, as gauges. */
  readonly metrics?: ProcessorMetrics['registry'];
}

export interface HoldExpiryWorker extends Worker {
  /** How far the index is behind the ledger. */
  lag(): ProcessorLag;
  /** Whether this process indexes and expires (holds the lease), or stands by. */
  isLeading(): boolean;
}

const HOLD_EVENTS: ReadonlySet<string> = new Set(['CreditsHeld', 'HoldCaptured', 'HoldReleased', 'HoldExpired']);

/** The index changes a batch of ledger events makes, last one per hold winning (a hold placed and freed in one batch is freed). */
export function holdIndexChanges(events: readonly RecordedEvent[]): HoldIndexChange[] {
  const changes = new Map<string, HoldIndexChange>();
  for (const recorded of events) {
    if (!HOLD_EVENTS.has(recorded.type)) continue;
    const balanceId = balanceIdOfStream(recorded.streamId);
    if (balanceId === undefined) continue;
    const event = fromStoredLedgerEvent(recorded);
    if (event.type === 'CreditsHeld') changes.set(event.holdId, { holdId: event.holdId, balanceId, expiresAt: new Date(event.expiresAt) });
    else if (event.type === 'HoldCaptured' || event.type === 'HoldReleased' || event.type === 'HoldExpired') {
      changes.set(event.holdId, { holdId: event.holdId, balanceId, expiresAt: null });
    }
  }
  return [...changes.values()];
}

/**
 * Frees holds nobody captured or released by their expiresAt (issue 15). Two halves, one lease:
 * a checkpointed processor keeps the index of open holds by expiry (migration 016) in step with
 * the ledger, resuming from its checkpoint after a restart; and, while this process leads, a poll
 * expires what the index says is due. Each hold expires once however many processes try: the
 * expiry is a command on the hold's balance with a command id derived from the hold id, so a
 * second attempt (a deposed leader, a retry after a crash) finds the first stored, and the decider
 * refuses a hold already captured or released. The index may briefly list a hold freed a moment
 * ago; expiring it is then refused and the sweep drops the row (the decider proved the hold freed).
 */
export function createHoldExpiryWorker(options: HoldExpiryWorkerOptions): HoldExpiryWorker {
  const { index, ledger } = options;
  const name = options.name ?? 'hold-expiry';
  const logger = options.logger.child({ module: 'hold-expiry' });
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const batchSize = options.batchSize ?? 100;
  const clock = options.clock ?? (() => new Date());

  const processor = createCheckpointedProcessor({
    name,
    eventStore: options.eventStore,
    checkpoints: options.checkpoints,
    // Idempotent: the changes are the net effect of the batch, applied as upsert and delete.
    handle: (events) => index.apply(holdIndexChanges(events)),
    logger,
    what: 'indexing holds by expiry',
    ...(options.lease !== undefined ? { lease: options.lease } : {}),
    ...(options.metrics !== undefined
      ? {
          metrics: {
            registry: options.metrics,
            lagEvents: { name: 'tally_hold_expiry_lag_events', help: 'Event store positions the index of holds by expiry is behind' },
            lagSeconds: { name: 'tally_hold_expiry_lag_seconds', help: 'Age of the oldest event the index of holds by expiry has not taken in' },
            leading: { name: 'tally_hold_expiry_leading', help: '1 while this process holds the hold expiry lease and expires holds, 0 while it stands by' },
          },
        }
      : {}),
  });

  /**
   * Expires a batch of what is due while this process leads. A failure waits for the next look.
   * Rows whose hold is settled (expired now or before, found captured or released, unknown) are
   * dropped from the index at once rather than when the index processor reaches the freeing event:
   * an index behind the ledger (a restart, a lease taken over) would otherwise hand the same
   * refused rows to every look, ahead of holds really due. A full batch runs the next at once only
   * if it dropped something; one of holds this clock finds not yet expired waits for the interval.
   */
  async function sweep(stop: AbortSignal): Promise<boolean> {
    if (!processor.isLeading()) return false;
    const due = await index.due(clock(), batchSize);
    const settled: HoldIndexChange[] = [];
    let expired = 0;
    try {
      for (const { holdId, balanceId } of due) {
        if (stop.aborted) return false;
        try {
          const result = await ledger.expireHold(holdId);
          if (!result.replayed) expired += 1;
        } catch (error) {
          if (error instanceof HoldNotExpiredError) {
            // This clock is behind the one that wrote the expiry: the hold stays due.
            logger.debug({ holdId, reason: error.message }, 'hold not expired yet');
            continue;
          }
          // Proven not open by the decider: the row is stale, and the processor's delete of it later changes nothing.
          if (!(error instanceof HoldNotOpenError || error instanceof HoldNotFoundError)) throw error;
          logger.debug({ holdId, reason: error.message }, 'hold not expired: freed already');
        }
        settled.push({ holdId, balanceId, expiresAt: null });
      }
    } finally {
      if (settled.length > 0) await index.apply(settled);
    }
    if (expired > 0) logger.info({ expired }, 'expired holds');
    return due.length === batchSize && settled.length > 0;
  }

  if (options.metrics !== undefined) {
    // Read from the index when scraped, not kept by the sweep: a sweep that keeps failing (a
    // refusal loop, a bug) or falls behind must not freeze it. Every scheduler process reports
    // it, standbys too, since they share the index.
    /** The read under way: a scrape while one runs waits for it rather than start another. */
    let reading: Promise<Date | null> | undefined;
    options.metrics.gauge({
      name: 'tally_hold_expiry_overdue_seconds',
      help: 'How long the oldest hold past its expiry has waited to be expired (0 when none)',
      collect: async (gauge) => {
        const now = clock();
        const timeoutMs = options.overdueReadTimeoutMs ?? OVERDUE_READ_TIMEOUT_MS;
        reading ??= index.oldestDue(now).finally(() => (reading = undefined));
        // A scrape waits OVERDUE_READ_TIMEOUT_MS at most: with PostgreSQL slow or its pool taken,
        // /metrics still answers every other metric in time. A read that fails or is late leaves
        // the gauge at its last value (the registry keeps it, and logs the error): ageing an old
        // read would fire the alert on a hold the sweep freed a second later.
        const oldestDue = await withDeadline(reading, timeoutMs, () => new Error(`the hold expiry index took over ${timeoutMs} ms to read`));
        gauge.set(oldestDue === null ? 0 : Math.max(0, (now.getTime() - oldestDue.getTime()) / 1000));
      },
    });
  }

  const sweeper = createPeriodicWorker({ name: `${name}-sweep`, logger, intervalMs: pollIntervalMs, runAtStart: false, run: sweep });

  const worker = createWorker(name, {
    async start(stop) {
      await processor.start();
      if (!stop.aborted) await sweeper.start();
    },
    async stop() {
      await sweeper.stop();
      await processor.stop();
    },
  });

  return Object.assign(worker, { lag: () => processor.lag(), isLeading: () => processor.isLeading() });
}
