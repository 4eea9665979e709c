import { BalanceNotOpenError, formatCredits, type Micros } from '@tally/domain';
import { DuplicateBalanceError, joinIdParts, type BalanceRegistry, type CommandResult, type LedgerService } from '@tally/ledger';
import type { Logger } from 'pino';
import { duePeriods, finalPeriod, lastDuePeriod, periodBounds } from './billingPeriod';
import type { Plan, PlanItem } from './plan';
import { ItemTerms, Subscription, termsAt, thresholdSetAt } from './subscription';
import type { GrantReservation, SubscriptionStore } from './subscriptionStore';

/**
 * A period whose grant failed. Its item's later periods wait for it (an item's periods are
 * granted in order); the subscription's other items go on. A later call grants it again.
 */
export interface GrantFailure {
  readonly productId: string;
  readonly period: number;
  /**
   * It was reserved before it failed: a cancellation's final period and a change of terms count
   * it already, and it is granted on those terms by the next call whose `now` has reached it.
   */
  readonly reserved: boolean;
  readonly error: unknown;
}

/** A failure's log fields, named alike wherever it is logged. */
export const grantFailureFields = (subscriptionId: string, { productId, period, reserved, error }: GrantFailure) => ({
  err: error,
  subscriptionId,
  productId,
  period,
  reserved,
});

interface GrantOutcome {
  /** Grants this call appended. */
  readonly granted: number;
  /** Due grants the ledger already held (another scheduler, a restart, a stale watermark). */
  readonly alreadyGranted: number;
  /** The subscription is canceled and every item has granted its last period. */
  readonly complete: boolean;
  /**
   * Every period due at `now` is granted but for `failures`; false when `maxPeriods` or `signal`
   * left some for the next call (a failure does not: its retry waits for the next call).
   */
  readonly caughtUp: boolean;
  /** At most one per item: the first period of it that failed. */
  readonly failures: readonly GrantFailure[];
}

interface SubscriptionGranter {
  /**
   * Grants the periods of every item that have started by `now` (and not after a cancellation),
   * in order. `maxPeriods` (default: no bound) bounds the backlog, the periods before each item's
   * current one, in all: a subscription backdated by years never makes one call, and the request
   * or scheduler run waiting for it, run long. An item's current period is granted whenever its
   * backlog is, bound or not, so every item of a subscription starting now (a plan of 13 products
   * with a bound of 12 too) has its first period when the call returns. The watermark moves with
   * every grant, so the next call continues where this one stopped. Once
   * `signal` is aborted it grants no further period (one in progress is finished and recorded).
   * A period that fails ends its item's grants for this call and is answered in `failures`; the
   * other items go on.
   */
  grantDue(subscription: Subscription, plan: Plan, now: Date, bound?: { maxPeriods?: number; signal?: AbortSignal }): Promise<GrantOutcome>;
}

interface SubscriptionGranterOptions {
  readonly subscriptions: SubscriptionStore;
  readonly ledger: LedgerService;
  /** Where the customer's balance of each plan product is found, when there is one. */
  readonly balanceRegistry: Pick<BalanceRegistry, 'findBalance'>;
  readonly logger: Logger;
}

/**
 * The one grant path, shared by the scheduler and the API (a new subscription's first period,
 * a cancellation's current one).
 *
 * Exactly-once: every grant is `ledger.grant`, whose event id is derived from
 * (subscription, product, period) (commandIds.grant → ledgerEventId). The event store stores an
 * event id once (events_event_id_key), and the ledger returns the stored grant instead of
 * deciding again when the id is present, so two schedulers racing on one period, a scheduler
 * restarted between the append and the watermark, or a stale watermark all end with one grant.
 *
 * Ordered with cancellations and changes of terms in two steps: each period is decided under the
 * subscription's row lock, the one they take, on the subscription as it stands, and reserved
 * before the lock is let go (SubscriptionStore.reserveGrant); the ledger's grant is appended after,
 * without the lock, and the watermark raised. A cancellation's final period takes in every period
 * reserved (cancellationInstant) and a change of terms never applies from one
 * (nextOverrideVersions), so a grant never lands after the final period, nor on terms other than
 * those read when it was reserved, and a reserved period whose append failed is granted again
 * (a replay if it landed) by the next run whose `now` has reached it: due periods start after the
 * watermark, not the reservation.
 */
export function createSubscriptionGranter(options: SubscriptionGranterOptions): SubscriptionGranter {
  const { subscriptions, ledger, balanceRegistry } = options;
  const logger = options.logger.child({ module: 'subscription-granter' });

  function openRequest(subscription: Subscription, item: PlanItem, terms: ItemTerms, balanceId?: string) {
    return {
      ...(balanceId !== undefined ? { balanceId } : {}),
      customerId: subscription.customerId,
      productId: item.productId,
      startingBalance: 0n,
      // Without a plan or override threshold, the balance takes the product's.
      ...(terms.lowBalanceThreshold !== null ? { lowBalanceThreshold: terms.lowBalanceThreshold } : {}),
      // The key that created the subscription opened the balance, whether this request or a
      // later tick of the scheduler opens it: read from the stored subscription, so it is the
      // same either way, and null for a subscription from before it was recorded.
      ...(subscription.createdBy !== null ? { actor: { kind: 'key' as const, ...subscription.createdBy } } : {}),
    };
  }

  /** The customer's balance of the product: the existing one, or one opened now. */
  async function balanceFor(subscription: Subscription, item: PlanItem, terms: ItemTerms): Promise<string> {
    const existing = await balanceRegistry.findBalance(subscription.customerId, item.productId);
    if (existing !== undefined) return existing.id;
    try {
      const opened = await ledger.openBalance(openRequest(subscription, item, terms));
      logger.info(
        { subscriptionId: subscription.id, customerId: subscription.customerId, productId: item.productId, balanceId: opened.balance.balanceId },
        'opened a balance for a subscription',
      );
      return opened.balance.balanceId;
    } catch (error) {
      // Someone else (another scheduler, the API) opened it between our lookup and our open.
      if (error instanceof DuplicateBalanceError) return error.existingBalanceId;
      throw error;
    }
  }

  /** Runs a command on the balance, first completing an opening that crashed halfway if it meets one. */
  async function onOpenBalance<T>(subscription: Subscription, item: PlanItem, terms: ItemTerms, balanceId: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      if (!(error instanceof BalanceNotOpenError)) throw error;
      // A registry row without a stream: an opening crashed halfway. Opening again with the
      // same id completes it, then the command; another writer completing it first is as good.
      try {
        await ledger.openBalance(openRequest(subscription, item, terms, balanceId));
      } catch (openError) {
        if (!(openError instanceof DuplicateBalanceError)) throw openError;
      }
      return command();
    }
  }

  /**
   * Sets the warning limit a period's terms set (thresholdSetAt) on the balance: before the
   * period's grant, and only while that grant is not stored, so a period granted again (a lost
   * watermark, two schedulers racing) leaves alone a limit changed on the balance since. Its id
   * derives from (subscription, product, period): runs racing on it make the change once. The
   * key that set the terms (the creator's for the plan's) is its actor.
   */
  async function setThreshold(subscription: Subscription, item: PlanItem, period: number, balanceId: string, threshold: Micros): Promise<void> {
    if (await ledger.isGranted(balanceId, { subscriptionId: subscription.id, productId: item.productId, period })) return;
    const setBy =
      subscription.overrides.find((version) => version.productId === item.productId && version.effectiveFromPeriod === period)?.changedBy ??
      subscription.createdBy;
    const result = await ledger.changeSettings(
      balanceId,
      { lowBalanceThreshold: threshold },
      {
        changeId: joinIdParts(['subscription', subscription.id, item.productId, String(period)]),
        ...(setBy !== null ? { actor: { kind: 'key' as const, ...setBy } } : {}),
      },
    );
    if (!result.replayed && result.events.length > 0) {
      logger.info(
        { subscriptionId: subscription.id, productId: item.productId, balanceId, period, lowBalanceThreshold: formatCredits(threshold) },
        "set the subscription's warning limit on its balance",
      );
    }
  }

  async function grantPeriod(
    subscription: Subscription,
    plan: Plan,
    item: PlanItem,
    period: number,
    terms: ItemTerms,
    balanceId: string,
  ): Promise<CommandResult> {
    const bounds = periodBounds(subscription.startsAt, item.period, period);
    const threshold = thresholdSetAt(subscription, item, period);
    return onOpenBalance(subscription, item, terms, balanceId, async () => {
      if (threshold !== null) await setThreshold(subscription, item, period, balanceId, threshold);
      return ledger.grant(balanceId, {
        subscriptionId: subscription.id,
        planId: plan.id,
        productId: item.productId,
        period,
        periodStart: bounds.start.toISOString(),
        periodEnd: bounds.end.toISOString(),
        credits: terms.creditsPerPeriod,
      });
    });
  }

  /** What the subscription under its lock says of granting one period. */
  type PeriodDecision =
    /** Reserved: to grant, on the subscription as it stood then. */
    | { readonly kind: 'reserved'; readonly current: Subscription }
    /** Recorded as granted already when the lock was had (another grant came first). */
    | { readonly kind: 'recorded' }
    /** After the final period of a cancellation made since the caller's view. */
    | { readonly kind: 'pastFinal'; readonly canceledAt: Date | null };

  /** Decides `period` of `item` under the subscription's lock, reserving it when it is still due. */
  async function reserve(subscriptionId: string, item: PlanItem, period: number): Promise<PeriodDecision> {
    const decision = await subscriptions.reserveGrant(subscriptionId, item.productId, (current): GrantReservation<PeriodDecision> => {
      const final = finalPeriod(current.startsAt, item.period, current.canceledAt);
      if (final !== null && period > final) return { outcome: { kind: 'pastFinal', canceledAt: current.canceledAt } };
      if ((current.grantedThrough.get(item.productId) ?? -1) >= period) return { outcome: { kind: 'recorded' } };
      return { reserve: period, outcome: { kind: 'reserved', current } };
    });
    if (decision === undefined) throw new Error(`subscription ${subscriptionId} vanished while granting`);
    return decision;
  }

  return {
    async grantDue(subscription, plan, now, bound = {}) {
      let granted = 0;
      let alreadyGranted = 0;
      let caughtUp = true;
      let budget = bound.maxPeriods ?? Number.POSITIVE_INFINITY;
      // The cancellation as last seen: the one given, or one found under the lock since.
      let canceledAt = subscription.canceledAt;
      const grantedThrough: number[] = [];
      const failures: GrantFailure[] = [];
      for (const item of plan.items) {
        let through = subscription.grantedThrough.get(item.productId) ?? -1;
        const dueInput = {
          startsAt: subscription.startsAt,
          period: item.period,
          now,
          canceledAt,
          grantedThrough: through,
        };
        const backlog = Math.max(0, lastDuePeriod(dueInput) - through - 1);
        let due: number[];
        if (backlog > budget) {
          // Periods are granted in order: the current one waits for the backlog before it.
          due = duePeriods({ ...dueInput, limit: budget });
          caughtUp = false;
          budget = 0;
        } else {
          due = duePeriods(dueInput);
          budget -= backlog;
        }
        let balanceId: string | undefined;
        for (const period of due) {
          if (bound.signal?.aborted) return { granted, alreadyGranted, complete: false, caughtUp: false, failures };
          let reserved = false;
          try {
            const decision = await reserve(subscription.id, item, period);
            if (decision.kind === 'pastFinal') {
              // Canceled meanwhile: no period after the final one is due, for this item or the next.
              canceledAt = decision.canceledAt;
              break;
            }
            if (decision.kind === 'recorded') {
              alreadyGranted += 1;
            } else {
              reserved = true;
              // Without the lock: the period is reserved, so no cancellation ends before it and no
              // change of terms applies from it. A throw leaves it reserved, not recorded: the next
              // call grants it again, a replay if this append landed.
              const { current } = decision;
              const terms = termsAt(current, item, period);
              balanceId ??= await balanceFor(current, item, terms);
              const result = await grantPeriod(current, plan, item, period, terms, balanceId);
              if (result.replayed) {
                alreadyGranted += 1;
              } else {
                granted += 1;
                logger.info(
                  { subscriptionId: subscription.id, productId: item.productId, balanceId, period, credits: formatCredits(terms.creditsPerPeriod) },
                  'granted subscription credits',
                );
              }
              await subscriptions.recordGranted(subscription.id, item.productId, period);
            }
          } catch (error) {
            // This item's later periods wait for it; the other items, on watermarks of their own,
            // go on: one that always fails (a balance the ledger refuses) holds back only itself.
            failures.push({ productId: item.productId, period, reserved, error });
            break;
          }
          through = period;
        }
        grantedThrough.push(through);
      }
      const complete =
        canceledAt !== null &&
        plan.items.every((item, index) => (grantedThrough[index] ?? -1) >= (finalPeriod(subscription.startsAt, item.period, canceledAt) ?? Number.POSITIVE_INFINITY));
      return { granted, alreadyGranted, complete, caughtUp, failures };
    },
  };
}
