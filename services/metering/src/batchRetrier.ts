import { isTransientPgError } from '@tally/postgres';
import type { Logger } from 'pino';

/** The parts of a Kafka batch's context that retrying needs: keep the membership alive, notice a stop. */
export interface BatchLiveness {
  heartbeat(): Promise<void>;
  /** False once stop() was called. */
  isRunning(): boolean;
  /** True once the partition was sought elsewhere: this batch's messages are no longer ours to commit. */
  isStale(): boolean;
}

/**
 * Thrown out of a retry loop when the consumer is stopping (or the batch went stale) while a
 * dependency is still down: the batch is left uncommitted and is redelivered to whichever member
 * owns the partition next, where deterministic event ids make the replay harmless.
 */
export class BatchAbandonedError extends Error {
  override readonly name = 'BatchAbandonedError';
}

export interface BatchRetrier {
  /**
   * Runs `operation` until it succeeds, retrying transient failures (isTransientError) with
   * exponential backoff (capped) between attempts and heartbeating throughout, so a dependency
   * that is down does not cost the partition. Any other failure is rethrown at once: it would
   * fail the same way again, and the consumer isolates the message(s) behind it instead of
   * stalling the partition on them. Errors for which `passThrough` is true are rethrown at once
   * too; so are the group's own errors from heartbeat (a rebalance: the batch must not be
   * committed by this member; see isHeartbeatError).
   */
  run<T>(stage: string, operation: () => Promise<T>, passThrough?: (error: unknown) => boolean): Promise<T>;
}

export interface BatchRetrierOptions {
  readonly liveness: BatchLiveness;
  readonly logger: Logger;
  readonly maxBackoffMs: number;
  readonly initialBackoffMs?: number;
  /** How often to heartbeat while an operation or a backoff runs; kafkajs throttles to its own interval. */
  readonly heartbeatEveryMs?: number;
}

/**
 * Whether trying again can succeed: Tally's errors (stores wrap connection failures, timeouts and
 * serialization failures in retriable errors) and kafkajs's (broker unavailable, request timeout)
 * say so with `retriable`; a raw pg error that escaped a store is classified by PostgreSQL's own
 * list. Everything else is deterministic.
 */
export function isTransientError(error: unknown): boolean {
  return (error as { retriable?: unknown } | null)?.retriable === true || isTransientPgError(error);
}

/** Errors the group's heartbeat raised: they end the batch (a rebalance), never a message's fault. */
const heartbeatErrors = new WeakSet<object>();

export function isHeartbeatError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && heartbeatErrors.has(error);
}

/** Carries a heartbeat's error past the operation's own outcome. */
class HeartbeatFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('heartbeat failed while a batch step ran', { cause });
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createBatchRetrier(options: BatchRetrierOptions): BatchRetrier {
  const { liveness, logger, maxBackoffMs } = options;
  const initialBackoffMs = options.initialBackoffMs ?? 100;
  const heartbeatEveryMs = options.heartbeatEveryMs ?? 1000;

  /** Heartbeats while `work` runs; a heartbeat failure (a rebalance) wins over the work's outcome. */
  async function keepingAlive<T>(work: Promise<T>): Promise<T> {
    let heartbeatError: unknown;
    const timer = setInterval(() => {
      liveness.heartbeat().catch((error: unknown) => {
        heartbeatError ??= error;
      });
    }, heartbeatEveryMs);
    const outcome = await work.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    clearInterval(timer);
    if (heartbeatError !== undefined) throw new HeartbeatFailure(heartbeatError);
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  async function backoff(ms: number): Promise<void> {
    for (let waited = 0; waited < ms; waited += heartbeatEveryMs) {
      if (!liveness.isRunning() || liveness.isStale()) throw new BatchAbandonedError('consumer stopping while a dependency is down');
      await sleep(Math.min(heartbeatEveryMs, ms - waited));
      await liveness.heartbeat();
    }
  }

  return {
    async run(stage, operation, passThrough) {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await keepingAlive(operation());
        } catch (error) {
          if (error instanceof HeartbeatFailure) {
            if (typeof error.cause === 'object' && error.cause !== null) heartbeatErrors.add(error.cause);
            throw error.cause;
          }
          if (passThrough?.(error)) throw error;
          if (!isTransientError(error)) throw error;
          if (!liveness.isRunning() || liveness.isStale()) throw new BatchAbandonedError(`consumer stopping after ${stage} failed`, { cause: error });
          // Exponential with jitter, so members retrying against one recovering service spread out.
          const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(attempt - 1, 20));
          const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
          logger.warn({ err: error, stage, attempt, retryInMs: delay }, `${stage} failed; retrying the batch step`);
          await backoff(delay);
        }
      }
    },
  };
}
