import { retry } from '@tally/runtime';
import type { Logger } from 'pino';
import type { RecordedEvent, SubscribeToAllOptions, Subscription } from './eventStore';

/** What a subscription needs from its store; an interface so the loop is testable without I/O. */
export interface SubscriptionSource {
  readAll(after: bigint, maxCount: number): Promise<RecordedEvent[]>;
  /** Rejects when live notifications cannot be set up now; the loop retries with backoff. */
  ensureListening(): Promise<void>;
  /** The callback runs on every append notification; returns the unregister function. */
  onAppended(wake: () => void): () => void;
}

interface SubscriptionTiming {
  /** Longest wait between reads when live: a lost notification delays delivery by at most this. */
  readonly pollIntervalMs: number;
  readonly retryInitialDelayMs: number;
  readonly retryMaxDelayMs: number;
}

const DEFAULT_BATCH_SIZE = 500;

/**
 * A catch-up subscription to $all: pages through readAll from the checkpoint, then waits for a
 * notification (or the poll interval) and reads again. The checkpoint only moves past events the
 * handler has accepted, and reads never skip positions (the store serialises writers), so every
 * event is delivered exactly once and in order. Read failures are reported and retried from the
 * same checkpoint with the runtime's backoff; a handler failure stops the subscription.
 */
export function startSubscription(
  source: SubscriptionSource,
  timing: SubscriptionTiming,
  options: SubscribeToAllOptions,
  logger: Logger,
): Subscription {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer; got ${batchSize}`);
  }
  let position = options.after ?? 0n;
  let stopped = false;
  // Set by a notification that arrives while a read is in flight, so the wait after that read
  // returns at once instead of sleeping through the news.
  let woken = false;
  let interrupt: (() => void) | undefined;

  const wake = (): void => {
    woken = true;
    interrupt?.();
  };
  const unregister = source.onAppended(wake);

  const pause = async (ms: number): Promise<void> => {
    if (woken || stopped) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      interrupt = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    interrupt = undefined;
  };

  const report = (error: unknown): void => {
    try {
      options.onError?.(error);
    } catch (callbackError) {
      logger.error({ err: callbackError }, 'subscription onError callback threw');
    }
  };

  // Aborted by stop(): ends a read retry's backoff at once.
  const stopping = new AbortController();

  const run = async (): Promise<void> => {
    let live = false;
    while (!stopped) {
      let events: RecordedEvent[];
      try {
        events = await retry(
          async () => {
            // Listen before reading, so an append that commits after the read still wakes the wait.
            await source.ensureListening();
            woken = false;
            return source.readAll(position, batchSize);
          },
          {
            what: 'subscription read',
            logger,
            signal: stopping.signal,
            initialDelayMs: timing.retryInitialDelayMs,
            maxDelayMs: timing.retryMaxDelayMs,
            // Reported on every failure, and retried from the same position: nothing is skipped.
            onAttempt: ({ error }) => report(error),
          },
        );
      } catch {
        // Every read failure is retried: only a stop ends the retry.
        break;
      }
      if (stopped) break;
      if (events.length > 0) {
        try {
          await options.onEvents(events);
        } catch (error) {
          logger.error({ err: error, position }, 'subscription handler failed; subscription stopped');
          report(error);
          stopped = true;
          break;
        }
        position = events[events.length - 1]!.position;
      }
      if (events.length === batchSize) {
        // A full page: there may be more right behind it, so it is catch-up, not live.
        live = false;
        continue;
      }
      if (!live) {
        live = true;
        logger.debug({ position }, 'subscription caught up');
        try {
          options.onCaughtUp?.(position);
        } catch (error) {
          report(error);
        }
      }
      await pause(timing.pollIntervalMs);
    }
  };

  const done = run().finally(unregister);
  return {
    async stop() {
      stopped = true;
      stopping.abort(new Error('the subscription is stopping'));
      interrupt?.();
      await done;
    },
  };
}
