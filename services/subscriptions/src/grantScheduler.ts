import type { BalanceRegistry, LedgerService } from '@tally/ledger';
import { createPeriodicWorker, type Worker } from '@tally/runtime';
import type { Logger } from 'pino';
import { createSubscriptionGranter, grantFailureFields } from './subscriptionGranter';
import type { SubscriptionStore } from './subscriptionStore';

interface GrantSchedulerOptions {
  readonly subscriptions: SubscriptionStore;
  readonly ledger: LedgerService;
  readonly balanceRegistry: Pick<BalanceRegistry, 'findBalance'>;
  /** Time comes in from outside, so a test can walk a subscription through a year in seconds. */
  readonly clock: () => Date;
  /** Pause between the end of one tick and the start of the next. */
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Subscriptions read per query. */
  readonly pageSize?: number;
  /**
   * Periods of backlog (before each item's current one) one run grants per subscription (default
   * 100); each item's current period comes with its backlog. A subscription further behind (one
   * backdated by years) is caught up over several runs, which then follow each other without the
   * interval's pause; the watermark keeps the progress.
   */
  readonly maxPeriodsPerRun?: number;
}

export interface GrantRunSummary {
  readonly subscriptions: number;
  readonly granted: number;
  readonly alreadyGranted: number;
  /** Subscriptions whose grants failed this tick; the next tick tries them again. */
  readonly failed: number;
  /** Subscriptions with periods still due after this run's bound; the next run continues. */
  readonly behind: number;
}

/**
 * A periodic worker: start() runs a tick now and then one every intervalMs; stop() ends the tick
 * in progress after the grant in hand (the watermark keeps what it granted) and waits for it.
 */
export interface GrantScheduler extends Worker {
  /**
   * One pass over every subscription that may still grant, at the clock's current time; once
   * `signal` is aborted it grants nothing more and returns what it did.
   */
  runOnce(signal?: AbortSignal): Promise<GrantRunSummary>;
}

/**
 * Grants subscription credits at period boundaries. Each tick grants every period that has
 * started and is not known to be granted, so a scheduler that was down catches up on all the
 * periods it missed. Any number of schedulers may run at once: a grant's ledger event id is
 * derived from (subscription, product, period), see createSubscriptionGranter.
 */
const DEFAULT_MAX_PERIODS_PER_RUN = 100;

export function createGrantScheduler(options: GrantSchedulerOptions): GrantScheduler {
  const { subscriptions, clock, intervalMs } = options;
  const pageSize = options.pageSize ?? 200;
  const maxPeriodsPerRun = options.maxPeriodsPerRun ?? DEFAULT_MAX_PERIODS_PER_RUN;
  if (!Number.isInteger(maxPeriodsPerRun) || maxPeriodsPerRun < 1) throw new Error('maxPeriodsPerRun must be a positive integer');
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new Error('pageSize must be a positive integer');
  const logger = options.logger.child({ module: 'grant-scheduler' });
  const granter = createSubscriptionGranter(options);

  async function runOnce(signal?: AbortSignal): Promise<GrantRunSummary> {
    const now = clock();
    let seen = 0;
    let granted = 0;
    let alreadyGranted = 0;
    let failed = 0;
    let behind = 0;
    let after: string | null = null;
    // A stop ends the run between two grants: a run of a thousand backdated periods would
    // otherwise hold the process's shutdown for seconds. What is left is due at the next start.
    while (signal?.aborted !== true) {
      const page = await subscriptions.listSchedulable({ after, limit: pageSize });
      for (const { subscription, plan } of page) {
        if (signal?.aborted) break;
        seen += 1;
        try {
          const outcome = await granter.grantDue(subscription, plan, now, { maxPeriods: maxPeriodsPerRun, ...(signal !== undefined ? { signal } : {}) });
          granted += outcome.granted;
          alreadyGranted += outcome.alreadyGranted;
          if (!outcome.caughtUp) behind += 1;
          for (const failure of outcome.failures) {
            // Tried again every tick until it succeeds: a period that always fails says which one it is each time.
            logger.warn(grantFailureFields(subscription.id, failure), "granting a subscription's period failed; the next tick tries it again");
          }
          if (outcome.failures.length > 0) failed += 1;
          if (outcome.complete) await subscriptions.markGrantsCompleted(subscription.id);
        } catch (error) {
          // One subscription's failure (a ledger outage, a conflict storm) must not hold up the others.
          failed += 1;
          logger.warn({ err: error, subscriptionId: subscription.id }, 'granting failed; the next tick retries');
        }
      }
      const last = page[page.length - 1];
      if (last === undefined || page.length < pageSize || signal?.aborted) break;
      after = last.subscription.id;
    }
    const summary = { subscriptions: seen, granted, alreadyGranted, failed, behind };
    if (granted > 0 || failed > 0 || behind > 0) logger.info({ ...summary, now: now.toISOString() }, 'grant tick done');
    return summary;
  }

  // Periods left by a run's bound are due already: the next run starts at once.
  const worker = createPeriodicWorker({ name: 'scheduler', logger, intervalMs, run: async (signal) => (await runOnce(signal)).behind > 0 });
  return Object.assign(worker, { runOnce });
}
