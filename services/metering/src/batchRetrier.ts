import { isTransientPgError } from '@tally/postgres';
import { HeartbeatError, retry } from '@tally/runtime';
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

export function createBatchRetrier(options: BatchRetrierOptions): BatchRetrier {
  const { liveness, logger, maxBackoffMs } = options;
  const initialBackoffMs = options.initialBackoffMs ?? 100;
  const heartbeatEveryMs = options.heartbeatEveryMs ?? 1000;
  const abandoned = () => !liveness.isRunning() || liveness.isStale();

  return {
    async run(stage, operation, passThrough) {
      // Aborted by the heartbeat once the consumer stops or the batch goes stale: the attempt in
      // flight finishes (its outcome may still be committed), no further one starts.
      const stopping = new AbortController();
      try {
        return await retry(operation, {
          what: stage,
          // The stage on every line, as operators (and tests) look for it.
          logger: logger.child({ stage }),
          initialDelayMs: initialBackoffMs,
          maxDelayMs: maxBackoffMs,
          // Equal jitter: members retrying against one recovering service spread out, and none
          // retries sooner than half the ceiling, so a stop is noticed before the next attempt.
          jitter: 'equal',
          signal: stopping.signal,
          isTransient: (error) => !passThrough?.(error) && isTransientError(error),
          onAttempt: ({ error }) => {
            if (abandoned()) throw new BatchAbandonedError(`consumer stopping after ${stage} failed`, { cause: error });
          },
          // Keeps the group membership while a step runs or waits, so a dependency that is down
          // does not cost the partition.
          heartbeat: {
            everyMs: heartbeatEveryMs,
            beat: async () => {
              if (abandoned()) stopping.abort(new BatchAbandonedError('consumer stopping while a dependency is down'));
              await liveness.heartbeat();
            },
          },
        });
      } catch (error) {
        if (error instanceof HeartbeatError) {
          if (typeof error.cause === 'object' && error.cause !== null) heartbeatErrors.add(error.cause);
          throw error.cause;
        }
        throw error;
      }
    },
  };
}
