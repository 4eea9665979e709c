import type { EventStore, RecordedEvent, Subscription } from '@tally/event-store';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { prepareLedgerBatch, writePreparedBatch } from './applyLedgerBatch';
import { createGenerationStore, type WriteOutcome } from './generationStore';
import { resolveBatchSize } from './resolveBatchSize';
import { retryWithBackoff } from './retryWithBackoff';
import { createSnapshotCache, type SnapshotCache } from './snapshotCache';

export interface BalanceProjectorOptions {
  readonly eventStore: EventStore;
  readonly redis: Redis;
  /** Root of every key; default `tally`. */
  readonly keyPrefix?: string;
  readonly logger: Logger;
  /** Events per batch (one write per batch, and one read for balances not in memory). Default 500. */
  readonly batchSize?: number;
  /**
   * Balances kept in memory (about 600 bytes each) so that a batch of balances it folded before
   * is written in one Redis round trip, without reading them back first. Default 10 000; 0 reads
   * every batch's balances from Redis.
   */
  readonly snapshotCacheSize?: number;
  /**
   * How often the projector refreshes the head for lag() and checks that its generation
   * still exists and is active, so that a FLUSHALL or a replay's switch is noticed even
   * when no event arrives. Default 1000.
   */
  readonly pollIntervalMs?: number;
}

export interface ProjectorLag {
  /** head − checkpoint: positions not yet reflected. */
  readonly events: bigint;
  /** now − recordedAt of the last applied event while behind; 0 when caught up. */
  readonly seconds: number;
}

export interface BalanceProjector {
  /** Resolves once subscribed; while Redis is unreachable it keeps retrying (stop() ends that). */
  start(): Promise<void>;
  /** Resolves after the batch in progress has been written or abandoned. */
  stop(): Promise<void>;
  lag(): ProjectorLag;
  /** Position up to which the active generation's snapshots are written. */
  checkpoint(): bigint;
}

/**
 * Keeps the active generation's snapshots up to date from a catch-up subscription. Every
 * batch is written and the checkpoint moved by one atomic script, which refuses to write
 * when the generation is no longer active ('stale': a replay switched), its keys are gone
 * ('reset': Redis flushed or restarted empty), or its checkpoint is below the position this
 * projector wrote ('rewound': Redis restored from an older snapshot or failed over to a lagging
 * replica, which took the snapshots back with it). In each case the projector resubscribes from
 * whatever ensureActive() finds: the new generation's checkpoint, a fresh generation at position
 * 0, or the rolled-back checkpoint, so snapshots come back without anyone running a command.
 * Projecting again from a checkpoint is safe because every write is idempotent by position: a
 * snapshot is written only past its stored position, the fold skips events at or below it, the
 * customer index is a set and the checkpoint only moves forward. An event store whose head is
 * below the checkpoint (reset, or another one) also gets a fresh generation.
 */
/** Why the projector subscribes again, by what the Redis side answered. */
const REASONS: Record<Exclude<WriteOutcome, 'ok'>, string> = {
  reset: 'the generation vanished (Redis flushed or restarted)',
  stale: 'another generation is active',
  rewound: 'the checkpoint is behind what this projector wrote (Redis restored from an older snapshot, or failed over to a lagging replica)',
};

export function createBalanceProjector(options: BalanceProjectorOptions): BalanceProjector {
  const { eventStore } = options;
  const logger = options.logger.child({ module: 'balanceProjector' });
  const store = createGenerationStore({ redis: options.redis, keyPrefix: options.keyPrefix });
  const batchSize = resolveBatchSize(options.batchSize, 500);
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const snapshotCacheSize = options.snapshotCacheSize ?? 10_000;
  const abort = new AbortController();

  let started = false;
  let generation: string | undefined;
  let position = 0n;
  let head = 0n;
  /** recordedAt of the last applied event, or when the current subscription began. */
  let freshAsOf = Date.now();
  let subscription: Subscription | undefined;
  /** Made anew with every subscription: projecting from a checkpoint again must start from what Redis holds. */
  let cache: SnapshotCache | undefined;
  /** Bumped by every resubscribe: batches of an older subscription are dropped, not applied. */
  let epoch = 0;
  let resubscribing: Promise<void> | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let checkingGeneration = false;

  const raise = (to: bigint) => {
    if (to > head) head = to;
  };

  async function apply(ownEpoch: number, events: readonly RecordedEvent[]): Promise<void> {
    const last = events[events.length - 1];
    if (ownEpoch !== epoch || generation === undefined || last === undefined) return;
    // `written`: what this projector knows it wrote, so a checkpoint found below it is a rollback.
    const target = { eventStore, store, logger, generation, mode: 'live' as const, written: position, ...(cache !== undefined ? { cache } : {}) };
    const retrying = { logger, signal: abort.signal };
    const prepared = await retryWithBackoff(() => prepareLedgerBatch(target, events), { ...retrying, what: 'apply a batch' });
    // A failed write is retried with the same snapshots: folding the batch again would find it
    // already in the cache and write nothing but the checkpoint.
    const outcome =
      typeof prepared === 'string' ? prepared : await retryWithBackoff(() => writePreparedBatch(target, prepared), { ...retrying, what: 'apply a batch' });
    if (outcome !== 'ok') {
      void resubscribe(REASONS[outcome]);
      return;
    }
    position = last.position;
    freshAsOf = last.recordedAt.getTime();
    raise(position);
  }

  function subscribe(after: bigint): void {
    const ownEpoch = epoch;
    subscription = eventStore.subscribeToAll({
      after,
      batchSize,
      onEvents: (events) => apply(ownEpoch, events),
      onCaughtUp: (caughtUpAt) => {
        if (ownEpoch === epoch) raise(caughtUpAt);
      },
      // The port retries failed reads itself; only a throwing handler stops a subscription,
      // and this handler throws only when stop() aborts it.
      onError: (error) => {
        if (ownEpoch === epoch && !abort.signal.aborted) logger.warn({ err: error }, 'subscription reported an error');
      },
    });
  }

  /** One at a time: a trigger that arrives meanwhile is covered by the state this one reads. */
  function resubscribe(reason: string): Promise<void> {
    if (resubscribing !== undefined || abort.signal.aborted) return resubscribing ?? Promise.resolve();
    epoch += 1;
    resubscribing = (async () => {
      const previous = subscription;
      subscription = undefined;
      await previous?.stop();
      const retrying = { logger, signal: abort.signal };
      let active = await retryWithBackoff(() => store.ensureActive(), { ...retrying, what: 'open the active generation' });
      head = await retryWithBackoff(() => eventStore.headPosition(), { ...retrying, what: 'read the head position' });
      if (head < active.checkpoint) {
        // Positions never go back: this projection was made from another (or a since reset) store.
        logger.warn({ checkpoint: active.checkpoint.toString(), head: head.toString() }, 'the event store is behind the projection');
        active = await retryWithBackoff(() => store.ensureActive({ startOver: true }), { ...retrying, what: 'start a fresh generation' });
      }
      if (active.created && generation !== undefined) {
        logger.warn({ generation: active.generation, reason }, 'projection lost: rebuilding every snapshot from position 0');
      } else if (active.generation === generation && active.checkpoint < position) {
        logger.warn(
          { generation, checkpoint: active.checkpoint.toString(), projected: position.toString(), reason },
          'the checkpoint moved backwards: projecting again from it',
        );
      }
      if (active.abandoned !== undefined) void dropGeneration(active.abandoned);
      generation = active.generation;
      position = active.checkpoint;
      cache = snapshotCacheSize === 0 ? undefined : createSnapshotCache(snapshotCacheSize, { startsEmpty: false });
      freshAsOf = Date.now();
      logger.info({ generation, checkpoint: position.toString(), reason }, 'subscribing');
      subscribe(position);
    })()
      .catch((error: unknown) => {
        if (!abort.signal.aborted) logger.error({ err: error }, 'could not resubscribe');
      })
      .finally(() => {
        resubscribing = undefined;
      });
    return resubscribing;
  }

  async function dropGeneration(abandoned: string): Promise<void> {
    try {
      const deleted = await store.deleteGeneration(abandoned);
      logger.info({ generation: abandoned, deleted }, 'deleted the remains of a lost generation');
    } catch (error) {
      logger.warn({ err: error, generation: abandoned }, 'could not delete the remains of a lost generation');
    }
  }

  async function poll(): Promise<void> {
    try {
      // Read before the query: the head it returns covers every event applied before it started.
      const applied = position;
      const polled = await eventStore.headPosition();
      if (polled < applied && resubscribing === undefined) void resubscribe('the event store is behind the checkpoint');
      raise(polled);
    } catch (error) {
      logger.debug({ err: error }, 'could not read the head position');
    }
    if (generation === undefined || resubscribing !== undefined || checkingGeneration) return;
    // Not awaited: a Redis that does not answer (its commands queue while it reconnects) must not
    // hold back the next poll, whose head lag() reports from. One check at a time.
    checkingGeneration = true;
    store
      .checkGeneration(generation, 'live', position)
      .then(
        (outcome) => {
          if (outcome !== 'ok') void resubscribe(REASONS[outcome]);
        },
        (error: unknown) => {
          // Redis is away; the batch path retries and a later poll looks again.
          logger.debug({ err: error }, 'could not check the generation');
        },
      )
      .finally(() => {
        checkingGeneration = false;
      });
  }

  function schedulePoll(): void {
    pollTimer = setTimeout(() => {
      void poll().finally(() => {
        if (!abort.signal.aborted) schedulePoll();
      });
    }, pollIntervalMs);
    pollTimer.unref();
  }

  return {
    async start() {
      if (started) throw new Error('the projector is already started');
      started = true;
      await resubscribe('start');
      if (!abort.signal.aborted) schedulePoll();
    },

    async stop() {
      abort.abort(new Error('the projector is stopping'));
      clearTimeout(pollTimer);
      epoch += 1;
      await resubscribing;
      await subscription?.stop();
      subscription = undefined;
    },

    lag() {
      const events = head > position ? head - position : 0n;
      return { events, seconds: events === 0n ? 0 : Math.max(0, (Date.now() - freshAsOf) / 1000) };
    },

    checkpoint: () => position,
  };
}
