import { createBackoff, withDeadline, type Backoff } from '@tally/runtime';
import type { Consumer, ConsumerRunConfig } from 'kafkajs';
import type { Logger } from 'pino';

/**
 * What kafkajs throws when the connection it asked for the group's coordinator on closes (its
 * broker pool swallows the closed connection and then finds none): non-retriable, so kafkajs
 * crashes the consumer and does not restart it (kafkajs issues #1445 and #1630), although a
 * broker restart or a cut connection is all it takes. The same error covers a refusal on every
 * broker (a group it is not authorised for), hence the time limit below.
 */
const COORDINATOR_NOT_FOUND = 'KafkaJSGroupCoordinatorNotFound';

/** How long crashes in a row on a lost coordinator are run again before the worker fails. */
export const DEFAULT_RERUN_FOR_MS = 120_000;

/**
 * How long settled() waits for a run again that is joining at a stop: a join after a lost
 * coordinator may retry for long, and the stop has its own bound (TALLY_SHUTDOWN_TIMEOUT_MS).
 */
const SETTLE_WITHIN_MS = 5000;

export interface SuperviseConsumerOptions {
  readonly logger: Logger;
  /** The worker's failure report (createWorker's `fail`): its process stops and exits non-zero. */
  readonly fail: (error: unknown) => void;
  /** The log line of a crash. */
  readonly message?: string;
  /** From the first of crashes in a row on a lost coordinator (no join between), how long they are run again; DEFAULT_RERUN_FOR_MS. */
  readonly rerunForMs?: number;
  /** The pause before each run again; growing, from 300 ms to 10 s by default. For tests. */
  readonly backoff?: Backoff;
  /** For tests. */
  readonly now?: () => number;
}

export interface SupervisedConsumer {
  /**
   * consumer.run with this configuration. After a crash kafkajs leaves although it is transient
   * (a lost coordinator), the same configuration runs again, until `signal` aborts (the worker
   * stops) or `rerunForMs` pass without a join.
   */
  run(config: ConsumerRunConfig, signal: AbortSignal): Promise<void>;
  /**
   * Resolves once no run again is under way (its pause ends at once when `signal` aborts), or
   * after SETTLE_WITHIN_MS. A worker's stop awaits it before consumer.disconnect(): kafkajs's stop
   * does not stop a run still joining its group, which would then fetch on after the stop. A
   * join that ends later, after the stop, is disconnected by the run again itself.
   */
  settled(): Promise<void>;
}

function lostCoordinator(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) if (cause.name === COORDINATOR_NOT_FOUND) return true;
  return false;
}

/**
 * Watches a consumer's crashes: each is logged at error; one kafkajs restarts from is left to it;
 * one it does not restart from (an authorization error, a non-retriable error out of a batch) is
 * reported to `fail`: nothing is consumed any more, so the worker fails and its process exits
 * non-zero (a supervisor restarts it) instead of running on while /health says up. A lost
 * coordinator is the exception: the consumer runs again here, with a growing pause, since
 * stopping the process for it would take down every role beside it (the API with the consumer)
 * for what a reconnect mends.
 */
export function superviseConsumer(consumer: Consumer, options: SuperviseConsumerOptions): SupervisedConsumer {
  const { logger, fail } = options;
  const message = options.message ?? 'consumer crashed';
  const backoff = options.backoff ?? createBackoff({ initialDelayMs: 300, maxDelayMs: 10_000, jitter: 'equal' });
  const now = options.now ?? Date.now;
  const rerunForMs = options.rerunForMs ?? DEFAULT_RERUN_FOR_MS;
  let current: { readonly config: ConsumerRunConfig; readonly signal: AbortSignal } | undefined;
  let crashesInARow = 0;
  let firstCrashAt = 0;
  /** The run again under way, if any; it never rejects (a failure goes to `fail`). */
  let rerunning: Promise<void> = Promise.resolve();

  async function runAgain(run: NonNullable<typeof current>, failures: number): Promise<void> {
    await backoff.wait(failures, run.signal);
    if (run.signal.aborted) return;
    logger.warn({ attempt: failures }, 'running the consumer again after it lost its group coordinator');
    try {
      // kafkajs has disconnected the crashed consumer (its onCrash does before CRASH): run starts
      // it afresh, joining the group and resuming from the committed offsets.
      await consumer.run(run.config);
    } catch (error) {
      fail(error);
      return;
    }
    // The worker stopped while this joined: its disconnect() came too early to stop this run.
    if (run.signal.aborted) await consumer.disconnect().catch((error: unknown) => logger.warn({ err: error }, 'disconnecting the consumer run again after the stop failed'));
  }

  consumer.on(consumer.events.GROUP_JOIN, () => {
    crashesInARow = 0;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    logger.error({ err: payload.error, restart: payload.restart }, message);
    if (payload.restart) return;
    const run = current;
    if (run !== undefined && lostCoordinator(payload.error)) {
      if (run.signal.aborted) return;
      if (crashesInARow === 0) firstCrashAt = now();
      crashesInARow += 1;
      if (now() - firstCrashAt < rerunForMs) {
        rerunning = runAgain(run, crashesInARow);
        return;
      }
    }
    fail(payload.error);
  });

  return {
    async run(config, signal) {
      current = { config, signal };
      await consumer.run(config);
    },
    async settled() {
      // runAgain never rejects: only the bound can, and a stop goes on past it all the same.
      await withDeadline(rerunning, SETTLE_WITHIN_MS, () => new Error('the consumer run again did not settle in time')).catch(() => undefined);
    },
  };
}
