import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

export interface RetryOptions {
  readonly logger: Logger;
  /** What failed, for the log: "apply a batch". */
  readonly what: string;
  /**
   * Aborting rejects at once with the abort reason, also mid-attempt: ioredis holds a command
   * that was in flight when the connection dropped until Redis is back, and stopping must
   * not wait for that.
   */
  readonly signal?: AbortSignal;
  /** Unbounded by default: a projector must never skip a batch because Redis was away. */
  readonly maxAttempts?: number;
}

const INITIAL_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;

function backoffDelayMs(attempt: number): number {
  return Math.min(MAX_DELAY_MS, INITIAL_DELAY_MS * 2 ** Math.min(attempt - 1, 16));
}

function abortable<T>(operation: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return operation;
  // The abandoned attempt may still fail later; nobody is waiting for it then.
  operation.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    operation.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export async function retryWithBackoff<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  for (let attempt = 1; ; attempt += 1) {
    options.signal?.throwIfAborted();
    try {
      return await abortable(operation(), options.signal);
    } catch (error) {
      if (options.signal?.aborted || attempt >= maxAttempts) throw error;
      const delayMs = backoffDelayMs(attempt);
      options.logger.warn({ err: error, attempt, delayMs }, `could not ${options.what}; retrying`);
      await sleep(delayMs, undefined, { signal: options.signal });
    }
  }
}
