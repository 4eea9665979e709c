import { setTimeout as delay } from 'node:timers/promises';

export interface WaitForOptions {
  /** What is awaited, for the timeout message. */
  readonly description: string;
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

export type NotYet = undefined | null | false;

/**
 * Polls `check` until it returns something other than undefined, null or false, and returns that.
 * A check that throws counts as "not yet"; its last error is part of the timeout message. Tests
 * wait for a condition with a deadline instead of sleeping for a guessed time.
 */
export async function waitFor<T>(
  check: () => T | NotYet | Promise<T | NotYet>,
  { description, timeoutMs = 30_000, intervalMs = 100 }: WaitForOptions,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const cause = lastError === undefined ? '' : `; last error: ${String(lastError)}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${description}${cause}`, { cause: lastError });
    }
    await delay(Math.min(intervalMs, remaining));
  }
}
