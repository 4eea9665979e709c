import { performance } from 'node:perf_hooks';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import type { MetricsRegistry } from '@tally/metrics';
import type { Redis } from 'ioredis';
import { createCheckpointedProcessor, isPermanentFailure, retry, type CheckpointStore, type Worker } from '@tally/runtime';
import type { Logger } from 'pino';
import { prepareLedgerBatch, writePreparedBatch } from './applyLedgerBatch';
import { createGenerationStore, NewerProjectionError, projectedFromAnotherStore, type WriteOutcome } from './generationStore';
import { UnfoldableLedgerEventError } from './ledgerRecord';
import { resolveBatchSize } from './resolveBatchSize';
import { createSnapshotCache, type SnapshotCache } from './snapshotCache';

interface BalanceProjectorOptions {
  readonly eventStore: EventStore;
  readonly redis: Redis;
  /** Root of every key; default `tally`. */
  readonly keyPrefix?: string;
  readonly logger: Logger;
  /** Events per batch (one write per batch, and one read for balances not in memory). Default 500. */
  readonly batchSize?: number;
  /**
   * Balances kept in memory (about 600 bytes each) so that a batch of balances it folded before
   * is written in one Redis round trip, without reading them back first. Default
   * DEFAULT_PROJECTOR_SNAPSHOT_CACHE_SIZE; 0 reads every batch's balances from Redis.
   */
  readonly snapshotCacheSize?: number;
  /**
   * How often the projector refreshes the head for lag() and checks that its generation
   * still exists and is active, so that a FLUSHALL or a replay's switch is noticed even
   * when no event arrives. Default 1000.
   */
  readonly pollIntervalMs?: number;
  /** Where the lag gauges go (tally_projector_lag_*); none without it. */
  readonly metrics?: MetricsRegistry;
}

export interface ProjectorLag {
  /** head − checkpoint: positions not yet reflected. */
  readonly events: bigint;
  /** Age of the oldest event not yet reflected, in seconds; 0 when caught up. */
  readonly seconds: number;
}

/** A worker (start resolves once subscribed; while Redis is unreachable it keeps retrying, and stop() ends that). */
export interface BalanceProjector extends Worker {
  lag(): ProjectorLag;
  /** Position up to which the active generation's snapshots are written. */
  checkpoint(): bigint;
}

/**
 * Balances the live projector keeps folded in memory by default, about 30 MB. Balances that are
 * written in turn, more of them than the cache holds, all miss: least recently used order drops
 * exactly the one needed next, and every batch then reads its balances back from Redis first.
 * 10,000 did so for 20,000 active balances (the bench's freshness after its metering run: fold
 * p95 77 ms, p99 end to end +1,527 ms over Kafka; with 50,000, 9 ms and +701 ms).
 */
export const DEFAULT_PROJECTOR_SNAPSHOT_CACHE_SIZE = 50_000;

/** Why the projector starts again, by what the Redis side answered. */
const REASONS: Record<Exclude<WriteOutcome, 'ok'>, string> = {
  reset: 'the generation vanished (Redis flushed or restarted)',
  stale: 'another generation is active',
  rewound: 'the checkpoint is behind what this projector wrote (Redis restored from an older snapshot, or failed over to a lagging replica)',
};

const RETRY = { initialDelayMs: 100, maxDelayMs: 5000 };

/**
 * Keeps the active generation's snapshots up to date: a checkpointed processor (@tally/runtime)
 * whose checkpoint lives in Redis with the snapshots. Every batch is written and the checkpoint
 * moved by one atomic script, which refuses to write when the generation is no longer active
 * ('stale': a replay switched), its keys are gone ('reset': Redis flushed or restarted empty), or
 * its checkpoint is below the position this projector wrote ('rewound': Redis restored from an
 * older snapshot or failed over to a lagging replica, which took the snapshots back with it). In
 * each case the projector starts again from whatever ensureActive() finds: the new generation's
 * checkpoint, a fresh generation at position 0, or the rolled-back checkpoint, so snapshots come
 * back without anyone running a command. Projecting again from a checkpoint is safe because
 * every write is idempotent by position: a snapshot is written only past its stored position,
 * the fold skips events at or below it, the customer index is a set and the checkpoint only
 * moves forward. An event store whose head is below the checkpoint (reset, or another one) also
 * gets a fresh generation.
 */
export function createBalanceProjector(options: BalanceProjectorOptions): BalanceProjector {
  const { eventStore } = options;
  const logger = options.logger.child({ module: 'balanceProjector' });
  const store = createGenerationStore({ redis: options.redis, keyPrefix: options.keyPrefix });
  const batchSize = resolveBatchSize(options.batchSize, 500);
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const snapshotCacheSize = options.snapshotCacheSize ?? DEFAULT_PROJECTOR_SNAPSHOT_CACHE_SIZE;

  let generation: string | undefined;
  /** What this projector knows it wrote, so a checkpoint found below it is a rollback. */
  let written: bigint | undefined;
  /** Made anew with every start: projecting from a checkpoint again must start from what Redis holds. */
  let cache: SnapshotCache | undefined;
  /** Why the next load happens, for its log lines. */
  let reason = 'start';
  let checkingGeneration = false;

  const restart = (why: string): void => {
    reason = why;
    void processor.restart(why);
  };

  /**
   * The processor's checkpoint store. load() opens the active generation (a fresh one when the
   * event store is behind it); save() has nothing to do, because the batch's own write script
   * moved the checkpoint with the snapshots, atomically.
   */
  const checkpoints: CheckpointStore = {
    async load() {
      // A generation made here is served only once it holds every event recorded before it was
      // made (its target), so readers fold from the event store meanwhile instead of seeing
      // balances from months ago climb back up. The target is the head read before the creation,
      // raised to the one read after it: the lost generation may have served events recorded
      // between the two (it was flushed after the first read).
      let active = await store.ensureActive(await eventStore.headPosition());
      const head = await eventStore.headPosition();
      if (projectedFromAnotherStore(head, active.checkpoint)) {
        // Positions never go back: this projection was made from another (or a since reset) store.
        logger.warn({ checkpoint: active.checkpoint.toString(), head: head.toString() }, 'the event store is behind the projection');
        active = await store.ensureActive(head, { startOver: true });
      } else if (active.created) {
        await store.raiseTarget(active.generation, head);
      }
      if (active.outdated) {
        logger.warn(
          { generation: active.generation, abandoned: active.abandoned, target: head.toString(), reason },
          "the active generation holds an older release's fold: folding every snapshot anew from position 0; readers fold from the event store until it reaches the target",
        );
      } else if (active.created && generation !== undefined) {
        logger.warn(
          { generation: active.generation, target: head.toString(), reason },
          'projection lost: rebuilding every snapshot from position 0; readers fold from the event store until it reaches the target',
        );
      } else if (active.generation === generation && written !== undefined && active.checkpoint < written) {
        // Redis went back in time, its snapshots with it: readers were served figures up to what
        // this projector wrote, so they get none from here until it is back there (the API folds).
        await store.raiseTarget(generation, written);
        logger.warn(
          { generation, checkpoint: active.checkpoint.toString(), projected: written.toString(), reason },
          'the checkpoint moved backwards: projecting again from it',
        );
      }
      if (active.abandoned !== undefined) void dropGeneration(active.abandoned);
      generation = active.generation;
      written = active.checkpoint;
      cache = snapshotCacheSize === 0 ? undefined : createSnapshotCache(snapshotCacheSize, { startsEmpty: false });
      logger.info({ generation, checkpoint: written.toString(), reason }, 'subscribing');
      return active.checkpoint;
    },
    async save() {},
  };

  async function apply(events: readonly RecordedEvent[], signal: AbortSignal): Promise<void | { restart: string }> {
    const last = events[events.length - 1];
    if (generation === undefined || last === undefined) return;
    const received = performance.now();
    const target = { eventStore, store, logger, generation, mode: 'live' as const, written: written ?? 0n, ...(cache !== undefined ? { cache } : {}) };
    // A failed fold is retried by the processor.
    const prepared = await prepareLedgerBatch(target, events);
    const preparedAt = performance.now();
    // A failed write is retried here, with the same snapshots: folding the batch again would find
    // it already in the cache and write nothing but the checkpoint.
    const outcome =
      typeof prepared === 'string' ? prepared : await retry(() => writePreparedBatch(target, prepared), { ...RETRY, what: 'applying a batch', logger, signal, abandonOnAbort: true });
    if (outcome !== 'ok') {
      reason = REASONS[outcome];
      return { restart: reason };
    }
    written = last.position;
    // When each batch became visible to readers (the freshness bench reads these lines' times).
    logger.debug(
      {
        first: events[0]!.position.toString(),
        last: last.position.toString(),
        events: events.length,
        balances: typeof prepared === 'string' ? 0 : prepared.changed.length,
        preparedMs: Math.round((preparedAt - received) * 10) / 10,
        durationMs: Math.round((performance.now() - received) * 10) / 10,
      },
      'batch projected',
    );
  }

  async function dropGeneration(abandoned: string): Promise<void> {
    try {
      const deleted = await store.deleteGeneration(abandoned);
      logger.info({ generation: abandoned, deleted }, 'deleted the remains of a lost generation');
    } catch (error) {
      logger.warn({ err: error, generation: abandoned }, 'could not delete the remains of a lost generation');
    }
  }

  /** Every pollIntervalMs: the head the processor learned, and whether the generation still stands. */
  function checkHead(head: bigint, applied: bigint): void {
    if (head < applied) return restart('the event store is behind the checkpoint');
    if (generation === undefined || checkingGeneration) return;
    // Not awaited: a Redis that does not answer (its commands queue while it reconnects) must not
    // hold back the next head poll, whose head lag() reports from. One check at a time.
    checkingGeneration = true;
    const checked = generation;
    // At the head, the generation holds every event recorded before the head was read (give or
    // take that query's round trip): entitlement checks measure lagMs from here. Behind, the last
    // mark stands, so lagMs can only overstate how stale the read model is.
    const fresh = head <= applied ? Date.now() : undefined;
    // Not past a rollback: the mark is refused when the checkpoint is below what this projector wrote.
    (fresh === undefined ? Promise.resolve() : store.markFresh(checked, fresh, written))
      .then(() => store.checkGeneration(checked, 'live', written))
      .then(
        (outcome) => {
          if (outcome !== 'ok') restart(REASONS[outcome]);
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

  const processor = createCheckpointedProcessor({
    name: 'balance-projector',
    eventStore,
    checkpoints,
    logger,
    what: 'applying a batch',
    batchSize,
    lagRefreshMs: pollIntervalMs,
    // Unbounded retries, 100 ms doubling to 5 s: a projector must never skip a batch because Redis
    // was away. An attempt in flight is abandoned on stop: ioredis holds a command that was in
    // flight when the connection dropped until Redis is back, and stopping must not wait for that.
    retry: RETRY,
    abandonOnAbort: true,
    // An event this release cannot fold, and a generation a newer release folded (met by the
    // checkpoint's load), are waited out, not failed on, though not retriable: in a rolling upgrade
    // a release that folds them takes over (see UnfoldableLedgerEventError, NewerProjectionError).
    // What else Tally names as not retriable fails the projector.
    isTransient: (error) => error instanceof UnfoldableLedgerEventError || error instanceof NewerProjectionError || !isPermanentFailure(error),
    onHead: checkHead,
    handle: apply,
    metrics: options.metrics && {
      registry: options.metrics,
      lagEvents: { name: 'tally_projector_lag_events', help: 'Event store positions not yet reflected in the Redis snapshots' },
      lagSeconds: { name: 'tally_projector_lag_seconds', help: 'Age of the oldest event not yet reflected in the Redis snapshots' },
    },
  });

  // In bigints, as the projector has always reported it.
  const lagInPositions = processor.lag;
  return Object.assign(processor, {
    lag: (): ProjectorLag => {
      const { events, seconds } = lagInPositions();
      return { events: BigInt(events), seconds };
    },
  });
}
