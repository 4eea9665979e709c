import { TallyError } from '@tally/domain';
import type { GaugeOptions, MetricsRegistry } from '@tally/metrics';
import { tryAcquireAdvisoryLease, type AdvisoryLease, type AdvisoryLeaseOptions } from '@tally/postgres';
import type { Logger } from 'pino';
import type { CheckpointStore } from './checkpointStore';
import { retry, type BackoffOptions } from './retry';
import { createPeriodicWorker } from './periodicWorker';
import { createWorker, type Worker } from './worker';

/** What the processor needs of an event: its place in the global log and when it was recorded. */
export interface PositionedEvent {
  readonly position: bigint;
  readonly recordedAt: Date;
}

/**
 * The event store's catch-up subscription and reads, as the processor uses them (EventStore of
 * @tally/event-store is one; declared here so that the event store may use the runtime's retry).
 */
export interface ProcessorSource<E extends PositionedEvent> {
  subscribeToAll(options: {
    readonly after?: bigint;
    readonly batchSize?: number;
    readonly onEvents: (events: readonly E[]) => Promise<void>;
    readonly onError?: (error: unknown) => void;
    readonly onCaughtUp?: (position: bigint) => void;
  }): { stop(): Promise<void> };
  headPosition(): Promise<bigint>;
  readAll(options: { readonly after?: bigint; readonly maxCount?: number }): Promise<E[]>;
}

/** The advisory lease's settings (its name is the processor's). */
export interface ProcessorLease extends Omit<AdvisoryLeaseOptions, 'name'> {
  /** How often a standing-by processor tries to take the lease over; default 2000. */
  readonly standbyPollMs?: number;
}

type MetricName = Pick<GaugeOptions, 'name' | 'help'>;

export interface ProcessorMetrics {
  readonly registry: MetricsRegistry;
  /** Gauge of lag().events. */
  readonly lagEvents: MetricName;
  /** Gauge of lag().seconds. */
  readonly lagSeconds: MetricName;
  /** Gauge, 1 while this process holds the lease (or has none to hold) and processes, else 0. */
  readonly leading?: MetricName;
}

export interface CheckpointedProcessorOptions<E extends PositionedEvent> {
  /** The checkpoint's name (and the lease's): processors sharing it share one position and take turns. */
  readonly name: string;
  readonly eventStore: ProcessorSource<E>;
  readonly checkpoints: CheckpointStore;
  /**
   * Does the work for a batch. Retried (with the same batch) until it succeeds or the processor
   * stops or loses its lease, which abort `signal`; it must be safe to run again for events it
   * has handled before (a crash between the handler and the checkpoint replays the batch).
   * Resolving to `{ restart }` says the batch was not handled and the processor must start again
   * from the checkpoint as load() then finds it (a projection whose store was reset under it).
   * A failure `isTransient` rejects is not retried: the processor fails (see isTransient).
   */
  handle(events: readonly E[], signal: AbortSignal): Promise<void | { readonly restart: string }>;
  readonly logger: Logger;
  /** What the handler does, for the log: "publishing ledger events". */
  readonly what: string;
  /** What the log calls this processor: 'relay' logs "lost the relay lease". Default 'processor'. */
  readonly role?: string;
  /** Events per batch; default 500. */
  readonly batchSize?: number;
  /** Backoff of the handler, the checkpoint and the lease; default 200 ms doubling to 5 s. */
  readonly retry?: BackoffOptions;
  /** How often lag() learns the head of the log while no events flow; default 5000. */
  readonly lagRefreshMs?: number;
  /** When set, one of the processors sharing the name works and the others stand by to take over. */
  readonly lease?: ProcessorLease;
  readonly metrics?: ProcessorMetrics;
  /**
   * Abandons the attempt in flight (the handler's, a checkpoint's) at once on stop or a lost
   * lease, for clients that hold a command until their server is back (ioredis).
   */
  readonly abandonOnAbort?: boolean;
  /**
   * Called with the head of the log each time the working processor learns it (every
   * lagRefreshMs) and the checkpoint it had before asking: where a processor checks what its
   * batches do not tell it (a head below the checkpoint means another or a reset event store).
   */
  readonly onHead?: (head: bigint, checkpoint: bigint) => void;
  /**
   * Whether a failure of the handler, of the subscription's reads (reported through its onError)
   * or of the reads that start a term (the checkpoint's load, the head), may succeed when tried again; default: all but a permanent one (isPermanentFailure).
   * One that cannot (an event the handler can never take, a store that cannot be read) fails the
   * processor (Worker.onFailure), logged at error level, with the checkpoint before that batch:
   * never skipped, and never retried for ever at warn where nobody looks.
   */
  readonly isTransient?: (error: unknown) => boolean;
}

export interface ProcessorLag {
  /**
   * Global positions between the head of the event store and the checkpoint: an upper bound of
   * the events not yet handled (positions have gaps and count every stream).
   */
  readonly events: number;
  /** Age of the oldest event not yet handled, in seconds; 0 when caught up. */
  readonly seconds: number;
}

export interface CheckpointedProcessor extends Worker {
  /** Measured against the shared checkpoint, so a standing-by processor reports the working one's lag. */
  lag(): ProcessorLag;
  /** Whether this processor works: it holds the lease, or needs none, and is subscribed. */
  isLeading(): boolean;
  /** The position up to which this processor's checkpoint is saved. */
  checkpoint(): bigint;
  /**
   * Stops the subscription and starts again from the checkpoint as the store's load() finds it
   * now, keeping the lease. One at a time: a call while one runs joins it.
   */
  restart(reason: string): Promise<void>;
}

/**
 * What fails a processor unless its isTransient says otherwise: a TallyError that says it is not
 * retriable, since Tally names that way what trying again cannot change (a deleted stream, a
 * journal that no longer matches its streams, an event that can never be published), with no list
 * of them here to forget a new one in. Anything else is retried, errors Tally does not name too (a
 * broker's, a driver's, a bug's): a processor that stops on the first unforeseen failure stops its
 * feed for what is most often an outage, and one that retries shows it in its lag and its
 * warnings, losing nothing.
 */
export function isPermanentFailure(error: unknown): boolean {
  return error instanceof TallyError && !error.retriable;
}

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_LAG_REFRESH_MS = 5_000;
const DEFAULT_RETRY: BackoffOptions = { initialDelayMs: 200, maxDelayMs: 5_000 };
const DEFAULT_STANDBY_POLL_MS = 2_000;
/**
 * How long the checkpoint of a handled batch may still be saved, retried, once the processor
 * stops or loses its lease: a blip's worth, well within TALLY_SHUTDOWN_TIMEOUT_MS (15 s by
 * default).
 */
const SAVE_AFTER_STOP_MS = 2_000;

/**
 * A signal aborted `delayMs` after `signal` is (bounding both the attempt in flight, for
 * abandonOnAbort, and the backoffs, as retry's deadlineMs, which counts from the start, cannot).
 * dispose() when done with it.
 */
function abortedLater(signal: AbortSignal, delayMs: number): { readonly signal: AbortSignal; dispose(): void } {
  const later = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const start = (): void => {
    timer = setTimeout(() => later.abort(signal.reason), delayMs);
  };
  if (signal.aborted) start();
  else signal.addEventListener('abort', start, { once: true });
  return {
    signal: later.signal,
    dispose: () => {
      signal.removeEventListener('abort', start);
      clearTimeout(timer);
    },
  };
}

/**
 * The one processor over the event store's subscription (issue 12 §1): loads its checkpoint,
 * hands every batch to `handle` in global position order, and saves the checkpoint after the
 * handler succeeded. Delivery to the handler is at least once: nothing is ever skipped (a failing
 * handler is retried for as long as it fails transiently, and fails the processor where it stands
 * when it fails for good), and a crash or a lost lease between the handler
 * and the save hands the batch over again. With a lease, processors sharing a name take turns
 * through a PostgreSQL advisory lock: one works, the others stand by and take over within
 * standbyPollMs of its stop or crash, from the checkpoint it left. PostgreSQL frees the lock when
 * its holder's session dies; a holder whose lease connection fails stops as soon as it notices
 * and its batch in hand returns, and until then two processors may handle the same events:
 * duplicates, never a gap. A batch handled as the processor stops or loses its lease still gets
 * its checkpoint saved, retried for up to SAVE_AFTER_STOP_MS.
 */
export function createCheckpointedProcessor<E extends PositionedEvent>(options: CheckpointedProcessorOptions<E>): CheckpointedProcessor {
  const { eventStore, checkpoints, name } = options;
  const logger = options.logger.child({ module: 'checkpointed-processor', processor: name });
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const lagRefreshMs = options.lagRefreshMs ?? DEFAULT_LAG_REFRESH_MS;
  const backoff = { ...DEFAULT_RETRY, ...options.retry };
  const standbyPollMs = options.lease?.standbyPollMs ?? DEFAULT_STANDBY_POLL_MS;
  const role = options.role ?? 'processor';

  let subscription: { stop(): Promise<void> } | undefined;
  // Set while this processor works; the term's controller is aborted when the lease is lost.
  let lease: AdvisoryLease | undefined;
  let term: AbortController | undefined;
  let standingBy = false;
  let campaignTimer: NodeJS.Timeout | undefined;

  // Lag bookkeeping: what is handled (checkpoint), what the store has (head), and since when the
  // oldest unhandled event waits (undefined: unknown or nothing waits).
  let checkpoint = 0n;
  let head = 0n;
  let waitingSince: Date | undefined;

  const retrying = (what: string, signal: AbortSignal) => ({ ...backoff, what, logger, signal, abandonOnAbort: options.abandonOnAbort === true });
  let restarting: Promise<void> | undefined;
  let stopped: AbortSignal | undefined;
  let failWorker: ((error: unknown) => void) | undefined;

  // One rule for every processor: one that passes none gets the default, so none of them retries a
  // store it cannot read for ever while another fails on it.
  const isTransient = options.isTransient ?? ((error: unknown): boolean => !isPermanentFailure(error));
  const isPermanent = (error: unknown): boolean => !isTransient(error);

  /** Ends the term and fails the worker, with the checkpoint where the handled work is. */
  function fail(error: unknown, message: string): void {
    logger.error({ err: error }, message);
    // Not awaited: the subscription's stop waits for the batch or read in progress to return.
    void endTerm();
    failWorker?.(error);
  }

  async function process(events: readonly E[], signal: AbortSignal): Promise<void> {
    const last = events[events.length - 1];
    if (last === undefined || signal.aborted) return;
    if (last.position > head) head = last.position;
    waitingSince ??= events[0]!.recordedAt;
    try {
      const outcome = await retry(() => options.handle(events, signal), { ...retrying(options.what, signal), isTransient });
      if (outcome !== undefined) {
        // Not handled: the checkpoint stays, and the processor starts again from what load() finds.
        void restart(outcome.restart);
        return;
      }
      // Only now, with the handler's work durable, may the checkpoint pass these events: moved
      // earlier, a crash or a failed handler would lose them for good. A crash after the handler
      // but before this write hands the batch over again on restart, which at-least-once allows.
      // The store moves it forward only, so a late save of a deposed holder never rewinds it.
      // A stop or a lost lease arriving now gives the save SAVE_AFTER_STOP_MS more, not one
      // attempt: one failed save would hand the whole batch over again (a relay's standby would
      // publish it twice).
      const saving = abortedLater(signal, SAVE_AFTER_STOP_MS);
      try {
        await retry(() => checkpoints.save(name, last.position), retrying('saving the checkpoint', saving.signal));
      } finally {
        saving.dispose();
      }
    } catch (error) {
      // Stopping, or the lease is lost: the checkpoint stays where the handled work is, and the
      // next term (here or in another process) resumes there. Returning (not throwing) is safe
      // because the subscription is being stopped and its in-memory position dies with it.
      if (signal.aborted) return;
      if (isPermanent(error)) {
        fail(error, `${options.what} failed and cannot succeed by retrying; stopping`);
        return;
      }
      throw error;
    }
    checkpoint = last.position;
    waitingSince = undefined;
  }

  /** Learns the head of the log (and the age of the next event) while no batch brings news. */
  async function refreshLag(): Promise<void> {
    try {
      // A processor standing by learns the working one's progress from the shared checkpoint.
      if (term === undefined) {
        // Without a lease nobody else works: this one is starting or restarting.
        if (options.lease === undefined) return;
        const saved = await checkpoints.load(name);
        const position = await eventStore.headPosition();
        const [next] = position > saved ? await eventStore.readAll({ after: saved, maxCount: 1 }) : [];
        if (term !== undefined) return;
        checkpoint = saved;
        head = position > saved ? position : saved;
        waitingSince = next?.recordedAt;
        return;
      }
      const known = checkpoint;
      const position = await eventStore.headPosition();
      if (position > head) head = position;
      if (term !== undefined && restarting === undefined) options.onHead?.(position, known);
      if (head > known && waitingSince === undefined) {
        const [next] = await eventStore.readAll({ after: known, maxCount: 1 });
        // A batch may have been handled meanwhile; then `next` is no longer waiting.
        if (next !== undefined && checkpoint === known && waitingSince === undefined) waitingSince = next.recordedAt;
      }
    } catch (error) {
      logger.debug({ err: error }, 'could not refresh the lag; keeping the last known');
    }
  }

  /** One attempt at the lease: works when it is taken (or none is needed), else stands by and tries again later. */
  async function campaign(stop: AbortSignal): Promise<void> {
    if (options.lease === undefined) return lead(undefined, stop);
    const taken = await tryAcquireAdvisoryLease({ ...options.lease, name });
    if (stop.aborted) {
      await taken?.release();
      return;
    }
    if (taken === undefined) {
      if (!standingBy) logger.info(`another ${role} holds the lease of this checkpoint; standing by`);
      standingBy = true;
      scheduleCampaign(stop);
      return;
    }
    standingBy = false;
    await lead(taken, stop);
  }

  function scheduleCampaign(stop: AbortSignal): void {
    campaignTimer = setTimeout(() => {
      retry(() => campaign(stop), retrying(`taking the ${role} lease`, stop)).catch((error: unknown) => {
        if (!stop.aborted) logger.error({ err: error }, `taking the ${role} lease failed`);
      });
    }, standbyPollMs);
  }

  /** Works from the checkpoint for as long as the lease lasts (or until stopped, without one). */
  async function lead(taken: AdvisoryLease | undefined, stop: AbortSignal): Promise<void> {
    const current = new AbortController();
    const signal = AbortSignal.any([stop, current.signal]);
    lease = taken;
    term = current;
    if (taken !== undefined) void taken.lost.then((error) => abdicate(current, error, stop));
    // What the term was doing, for the log line of a failure retrying cannot fix.
    let starting = 'loading the checkpoint';
    try {
      // With isTransient: a load may read the event store too (the projector's asks its head).
      const after = await retry(() => checkpoints.load(name), { ...retrying(starting, signal), isTransient });
      starting = 'reading the head of the event store';
      // Known from the start, so lag() does not report "caught up" before the first batch.
      const storeHead = await retry(() => eventStore.headPosition(), { ...retrying(starting, signal), isTransient });
      // Stopped, or the lease lost, while these were read: this term must not start.
      signal.throwIfAborted();
      checkpoint = after;
      head = storeHead > after ? storeHead : after;
      waitingSince = undefined;
      starting = 'subscribing to the event store';
      subscription = eventStore.subscribeToAll({
        after,
        batchSize,
        onEvents: (events) => process(events, signal),
        // The store reports read failures here and retries them itself; process never throws but
        // for a bug. A read failure isTransient rejects (a store that can no longer be read as it
        // is: a deleted stream, a journal that no longer matches its streams) fails the processor
        // as a handler's would: the store would retry it for ever, logged at warn where nobody looks.
        onError: (error) => {
          if (signal.aborted) return;
          if (isPermanent(error)) fail(error, 'reading the event store failed and cannot succeed by retrying; stopping');
          else logger.debug({ err: error }, 'event store subscription reported an error');
        },
        onCaughtUp: (position) => {
          if (position > head) head = position;
        },
      });
      logger.info({ after: after.toString() }, `${role} working`);
    } catch (error) {
      if (!signal.aborted) await taken?.release();
      // A store that cannot answer as it is fails the processor, as its subscription's reads do,
      // whichever path started this term (start, a standby's takeover, a restart): each of them
      // would retry it for ever.
      if (!signal.aborted && isPermanent(error)) {
        lease = undefined;
        fail(error, `${starting} failed and cannot succeed by retrying; stopping`);
        return;
      }
      throw error;
    }
  }

  /** Ends the term in progress: no batch of it is handled or saved any more. */
  async function endTerm(): Promise<void> {
    term?.abort();
    term = undefined;
    const previous = subscription;
    subscription = undefined;
    await previous?.stop();
  }

  /** The lease's connection failed: PostgreSQL may already have let another process take over. */
  async function abdicate(ended: AbortController, error: Error, stop: AbortSignal): Promise<void> {
    if (stop.aborted || term !== ended) return;
    logger.warn({ err: error }, `lost the ${role} lease; stopping and standing by`);
    lease = undefined;
    await endTerm();
    if (stop.aborted) return;
    standingBy = true;
    scheduleCampaign(stop);
  }

  function restart(reason: string): Promise<void> {
    const stop = stopped;
    if (restarting !== undefined || term === undefined || stop === undefined || stop.aborted) return restarting ?? Promise.resolve();
    const held = lease;
    restarting = (async () => {
      await endTerm();
      logger.info({ reason }, 'starting again from the checkpoint');
      await lead(held, stop);
    })()
      .catch((error: unknown) => {
        if (!stop.aborted) logger.error({ err: error }, 'could not start again from the checkpoint');
      })
      .finally(() => (restarting = undefined));
    return restarting;
  }

  function lag(): ProcessorLag {
    const behind = head > checkpoint ? Number(head - checkpoint) : 0;
    const seconds = behind > 0 && waitingSince !== undefined ? Math.max(0, (Date.now() - waitingSince.getTime()) / 1000) : 0;
    return { events: behind, seconds };
  }

  const metrics = options.metrics;
  if (metrics !== undefined) {
    metrics.registry.gauge({ ...metrics.lagEvents, collect: (gauge) => gauge.set(lag().events) });
    metrics.registry.gauge({ ...metrics.lagSeconds, collect: (gauge) => gauge.set(lag().seconds) });
    if (metrics.leading !== undefined) metrics.registry.gauge({ ...metrics.leading, collect: (gauge) => gauge.set(term !== undefined ? 1 : 0) });
  }

  // One refresh at a time: a database slow to answer gets no pile of them queued behind it.
  const lagRefresh = createPeriodicWorker({ name: `${name} lag refresh`, logger, intervalMs: lagRefreshMs, runAtStart: false, abandonOnStop: true, run: refreshLag });

  const worker = createWorker(name, {
    async start(stop, fail) {
      stopped = stop;
      failWorker = fail;
      await lagRefresh.start();
      try {
        await retry(() => campaign(stop), retrying(`taking the ${role} lease`, stop));
      } catch (error) {
        if (!stop.aborted) throw error;
      }
    },
    async stop() {
      await lagRefresh.stop();
      clearTimeout(campaignTimer);
      await restarting;
      // The worker aborted start's signal before this: the subscription delivers no further batch.
      await endTerm();
      // Only now, with no batch in flight, may another process take over from the checkpoint.
      await lease?.release();
      lease = undefined;
      logger.info({ checkpoint: checkpoint.toString() }, `${role} stopped`);
    },
  });

  return Object.assign(worker, {
    lag,
    isLeading: () => term !== undefined,
    checkpoint: () => checkpoint,
    restart,
  });
}
