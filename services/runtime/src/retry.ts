import { isTransientPgError } from '@tally/postgres';
import type { Logger } from 'pino';

/**
 * Whether trying again can succeed, for `isTransient`: Tally's errors (stores wrap connection
 * failures, timeouts and serialization failures in retriable errors) and kafkajs's (broker
 * unavailable, request timeout) say so with `retriable`; a raw pg error that escaped a store is
 * classified by PostgreSQL's own list. Everything else is deterministic.
 */
export function isTransientError(error: unknown): boolean {
  return (error as { retriable?: unknown } | null)?.retriable === true || isTransientPgError(error);
}

/**
 * The delay schedule of every retry in Tally: exponential from `initialDelayMs`, capped at
 * `maxDelayMs`, with jitter so that the processes retrying against one recovering dependency (or
 * colliding on one stream) spread out instead of retrying in lockstep.
 */
export interface BackoffOptions {
  /** Ceiling of the first delay; it doubles with every attempt up to maxDelayMs. Default 100. */
  readonly initialDelayMs?: number;
  /** Default 5000. */
  readonly maxDelayMs?: number;
  /**
   * 'full' (default): uniform in [0, ceiling]; 'equal': uniform in [ceiling/2, ceiling], for a
   * caller that must not retry sooner than half the ceiling (the consumer notices a stop between
   * its attempts only as often as it heartbeats).
   */
  readonly jitter?: 'full' | 'equal';
  /** In [0, 1); Math.random by default. For tests. */
  readonly random?: () => number;
}

export interface Backoff {
  /** The delay before attempt `failures + 1`, after `failures` (≥ 1) failed attempts. */
  delayMs(failures: number): number;
  /** Waits delayMs(failures); an abort of `signal` ends the wait at once (it resolves, never rejects). */
  wait(failures: number, signal?: AbortSignal): Promise<void>;
}

const DEFAULT_INITIAL_DELAY_MS = 100;
const DEFAULT_MAX_DELAY_MS = 5000;

export function createBackoff(options: BackoffOptions = {}): Backoff {
  const initialDelayMs = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
  const maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const random = options.random ?? Math.random;
  if (!(initialDelayMs >= 0) || !(maxDelayMs >= 0)) throw new RangeError(`backoff delays must be non-negative; got ${initialDelayMs} and ${maxDelayMs}`);
  const delayMs = (failures: number): number => {
    // The exponent is capped so the ceiling stays a finite number however long a dependency is down.
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
    return options.jitter === 'equal' ? Math.round(ceiling / 2 + random() * (ceiling / 2)) : Math.floor(random() * (Math.floor(ceiling) + 1));
  };
  return { delayMs, wait: (failures, signal) => sleep(delayMs(failures), signal) };
}

/** Resolves after `ms`, or at once when `signal` is (or becomes) aborted. On the global timers, which fake clocks drive. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** What onAttempt learns about a failed attempt that is about to be retried. */
interface FailedAttempt {
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly error: unknown;
  /** The backoff before the next attempt. */
  readonly delayMs: number;
}

interface RetryOptions extends BackoffOptions {
  /**
   * What is being done, for the log: "publishing ledger events" logs "publishing ledger events
   * failed; retrying", with `what` also as the line's `stage` field, which operators query.
   */
  readonly what: string;
  /** Logs each retried failure at warn; omitted, nothing is logged (onAttempt can). */
  readonly logger?: Logger;
  /**
   * Whether a failure may succeed when tried again. Anything else is rethrown at once: it would
   * fail the same way again (rule 4: retry only transient). Default: every failure is retried.
   */
  readonly isTransient?: (error: unknown) => boolean;
  /**
   * Once aborted no further attempt starts, a backoff ends at once and the retry rejects with the
   * signal's reason. The attempt in flight runs to its end (work already paid for, such as a
   * checkpoint after the broker's acknowledgement, is finished), unless `abandonOnAbort`.
   */
  readonly signal?: AbortSignal;
  /**
   * Rejects at once when the signal is aborted, also mid-attempt, abandoning the attempt: for a
   * client that holds a command in flight until its server is back (ioredis), which stopping
   * must not wait for. The abandoned attempt's outcome is ignored.
   */
  readonly abandonOnAbort?: boolean;
  /** Attempts in all, the first included; the last failure is rethrown. Unbounded by default. */
  readonly maxAttempts?: number;
  /** Time budget from the first attempt, in ms: no retry whose backoff would end past it. Unbounded by default. */
  readonly deadlineMs?: number;
  /**
   * Called for every failed attempt that will be retried, before its backoff. A throw ends the
   * retry with that error (a consumer that learns its batch is no longer its own).
   */
  readonly onAttempt?: (failed: FailedAttempt) => void;
  /**
   * Called every `everyMs` while an attempt or a backoff runs, and once after every failed
   * attempt: what keeps a lease or a group membership alive while a dependency is down. A
   * rejection ends the retry with a HeartbeatError (its cause the rejection), even when the
   * attempt succeeded: the membership it kept alive is gone.
   */
  readonly heartbeat?: { readonly everyMs: number; beat(): Promise<void> };
}

/** The heartbeat failed while a retry ran; `cause` is what it rejected with. */
export class HeartbeatError extends Error {
  override readonly name = 'HeartbeatError';
  constructor(override readonly cause: unknown) {
    super('the heartbeat failed while retrying', { cause });
  }
}

/**
 * The one retry loop (issue 12 §1): runs `operation` until it succeeds, retrying transient
 * failures with capped exponential backoff and jitter; ends on a non-transient failure, an abort,
 * maxAttempts, the deadline, a throwing onAttempt or a failed heartbeat.
 */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { signal, heartbeat } = options;
  const backoff = createBackoff(options);
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const deadline = options.deadlineMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.deadlineMs;
  const isTransient = options.isTransient ?? (() => true);

  // Heartbeats run for the whole retry; the first failure is kept and ends it.
  let heartbeatFailure: HeartbeatError | undefined;
  let beating = false;
  const beat = async (): Promise<void> => {
    if (heartbeat === undefined || beating) return;
    beating = true;
    try {
      await heartbeat.beat();
    } catch (error) {
      heartbeatFailure ??= new HeartbeatError(error);
    } finally {
      beating = false;
    }
  };
  const timer = heartbeat === undefined ? undefined : setInterval(() => void beat(), heartbeat.everyMs);
  const checkHeartbeat = (): void => {
    if (heartbeatFailure !== undefined) throw heartbeatFailure;
  };

  try {
    for (let attempt = 1; ; attempt += 1) {
      if (attempt > 1 || options.abandonOnAbort) signal?.throwIfAborted();
      let value: T;
      try {
        value = await (options.abandonOnAbort ? abandonable(operation(attempt), signal) : operation(attempt));
      } catch (error) {
        checkHeartbeat();
        if (signal?.aborted && (options.abandonOnAbort || error === signal.reason)) throw signal.reason;
        if (!isTransient(error) || attempt >= maxAttempts) throw error;
        const delayMs = backoff.delayMs(attempt);
        if (Date.now() + delayMs > deadline) throw error;
        // The beat comes first: when it fails, or aborts the signal (it found the work given up),
        // the retry ends here, and no retry is announced that will not happen.
        await beat();
        checkHeartbeat();
        signal?.throwIfAborted();
        options.onAttempt?.({ attempt, error, delayMs });
        options.logger?.warn({ stage: options.what, err: error, attempt, delayMs }, `${options.what} failed; retrying`);
        await sleep(delayMs, signal);
        checkHeartbeat();
        continue;
      }
      checkHeartbeat();
      return value;
    }
  } finally {
    clearInterval(timer);
  }
}

/**
 * `operation`, or a rejection with `signal.reason` as soon as the signal aborts (at once if it
 * has): the caller stops waiting, the operation goes on (and its later failure is nobody's
 * unhandled rejection).
 */
export function abandonable<T>(operation: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return operation;
  // The abandoned attempt may still fail later; nobody is waiting for it then.
  operation.catch(() => undefined);
  // Aborted already (a deadline passed before the wait began): the abort event will not come again.
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    operation.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * `operation`, or a rejection with `timedOut()` once `ms` pass before it settles: the caller stops
 * waiting, the operation goes on (as with abandonable). The one deadline of the code base, on the
 * global timers (which fake clocks drive), its timer cleared whichever comes first.
 */
export async function withDeadline<T>(operation: Promise<T>, ms: number, timedOut: () => unknown): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(timedOut()), ms);
  try {
    return await abandonable(operation, deadline.signal);
  } finally {
    clearTimeout(timer);
  }
}
