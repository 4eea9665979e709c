import { TallyError } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { Redis } from 'ioredis';
import { SNAPSHOT_FIELDS, SnapshotField, snapshotToHash } from './balanceSnapshot';
import { foldBalanceStreams } from './foldBalanceStreams';
import { snapshotOf } from './positionedBalance';
import { createGenerationStore, GenerationStore } from './generationStore';
import { rebuildGeneration } from './rebuildGeneration';
import { createProgressTracker } from './rebuildProgress';
import type { ReplayOptions } from './replayBalances';
import { resolveBatchSize } from './resolveBatchSize';
import { createSnapshotCache } from './snapshotCache';
import { startAsideBuild } from './startAsideBuild';

type VerifyOptions = Omit<ReplayOptions, 'snapshotCacheSize'>;

interface BalanceDifference {
  readonly balanceId: string;
  /**
   * A snapshot field; `snapshot` when one side has no snapshot at all (the missing side is
   * null, the other 'present'); `customerIndex` when the live customer index lacks the
   * balance (live null, rebuilt holds the customer id) or lists it under a customer it is not
   * of (live that customer, rebuilt the balance's own, or null for no such balance).
   */
  readonly field: SnapshotField | 'snapshot' | 'customerIndex';
  /** null: absent. */
  readonly live: string | null;
  readonly rebuilt: string | null;
}

interface VerifyResult {
  /** The live checkpoint the rebuild went up to. */
  readonly checkpoint: bigint;
  /** Balances compared. */
  readonly balances: number;
  /** Ordered by balance id, then field. */
  readonly differences: BalanceDifference[];
}

type Hash = Record<string, string>;

/**
 * What the verification compared changed under it (its aside swept or lost, the live generation
 * replaced): the differences it found mean nothing, neither do none. Running it again answers.
 */
export class VerificationDisturbedError extends TallyError {
  readonly code = 'verification_disturbed';
  readonly retriable = true;
}

const DIGITS = /^\d+$/;
const CHUNK = 500;

/**
 * Rebuilds the snapshots aside up to the live checkpoint and compares them with the live
 * ones, without switching. The live projector keeps running meanwhile, so a live snapshot
 * may have moved past that checkpoint by the time it is read: such a balance is folded again
 * from its own stream up to the position the live snapshot states, which is exactly what
 * the snapshot must hold.
 */
export async function verifyBalances(options: VerifyOptions): Promise<VerifyResult> {
  const { eventStore, redis } = options;
  const logger = options.logger.child({ module: 'verifyBalances' });
  const store = createGenerationStore({ redis, keyPrefix: options.keyPrefix });
  const live = await store.readActive();
  if (live === undefined) throw new Error('there is no live projection to verify (Redis empty or flushed?)');
  const build = await startAsideBuild(store, logger);
  const aside = build.generation;
  let result: VerifyResult;
  try {
    logger.info({ live: live.generation, aside, checkpoint: live.checkpoint.toString() }, 'rebuilding aside to verify');
    const progress = createProgressTracker(live.checkpoint, options.onProgress);
    const { outcome } = await rebuildGeneration({
      eventStore,
      store,
      logger,
      generation: aside,
      cache: createSnapshotCache(),
      batchSize: resolveBatchSize(options.batchSize, 1000),
      after: 0n,
      until: live.checkpoint,
      onBatch: progress.onBatch,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    if (outcome !== 'ok') throw new VerificationDisturbedError('Redis lost the keys of the verification (flushed or restarted?); run it again');
    const comparison = createComparison(redis, store, live.generation, aside, live.checkpoint);
    for (const generation of [aside, live.generation]) {
      for await (const balanceIds of store.scanBalanceIds(generation)) {
        options.signal?.throwIfAborted();
        await comparison.compare(balanceIds);
      }
    }
    await comparison.compareMoved(eventStore);
    for await (const customerIds of store.scanCustomerIds(live.generation)) {
      options.signal?.throwIfAborted();
      await comparison.compareCustomers(customerIds, eventStore);
    }
    if ((await store.readActive())?.generation !== live.generation) {
      throw new VerificationDisturbedError('the live generation changed while verifying (a replay switched, or Redis was flushed); run it again');
    }
    // Before answering: compared with an aside deleted meanwhile (another replay or verify took it
    // for abandoned, its heartbeat late), every live balance would look missing from the rebuild.
    // A sweep deletes the checkpoint first, so one still there means every key compared was there.
    if ((await store.checkGeneration(aside, 'aside')) !== 'ok') {
      throw new VerificationDisturbedError(
        `the generation the verification built, ${aside}, was deleted while it compared (swept as stale by another replay or verify, or Redis flushed); run it again`,
      );
    }
    result = { checkpoint: live.checkpoint, balances: comparison.compared, differences: comparison.differences() };
  } catch (error) {
    // Stopped (Ctrl-C) or failed: the copy it built must not stay in Redis.
    throw await build.abandon(error);
  }
  await build.discard();
  return result;
}

function createComparison(redis: Redis, store: GenerationStore, liveGeneration: string, aside: string, checkpoint: bigint) {
  const { keys } = store;
  const seen = new Set<string>();
  const found = new Map<string, BalanceDifference>();
  /** Live snapshots past the checkpoint, to compare with their stream folded up to their own position. */
  const moved = new Map<string, Hash>();
  /** Each compared balance's customer as rebuilt (or folded): which live index set it belongs in. */
  const customerOf = new Map<string, string>();

  const report = (difference: BalanceDifference) => found.set(`${difference.balanceId}\u0000${difference.field}`, difference);

  function compareHashes(balanceId: string, liveHash: Hash | undefined, rebuilt: Hash | undefined): void {
    if (liveHash === undefined || rebuilt === undefined) {
      if (liveHash !== rebuilt) {
        report({ balanceId, field: 'snapshot', live: liveHash === undefined ? null : 'present', rebuilt: rebuilt === undefined ? null : 'present' });
      }
      return;
    }
    for (const field of SNAPSHOT_FIELDS) {
      const liveValue = liveHash[field] ?? null;
      if (liveValue !== rebuilt[field]) report({ balanceId, field, live: liveValue, rebuilt: rebuilt[field] ?? null });
    }
  }

  async function checkIndex(entries: readonly { balanceId: string; customerId: string }[]): Promise<void> {
    const pipeline = redis.pipeline();
    for (const { balanceId, customerId } of entries) pipeline.sismember(keys.customer(liveGeneration, customerId), balanceId);
    const replies = (await pipeline.exec()) ?? [];
    entries.forEach(({ balanceId, customerId }, index) => {
      const [error, member] = replies[index] ?? [new Error('no reply')];
      if (error) throw error;
      if (member !== 1) report({ balanceId, field: 'customerIndex', live: null, rebuilt: customerId });
    });
  }

  return {
    get compared() {
      return seen.size;
    },

    differences(): BalanceDifference[] {
      const order = (field: string) => ['snapshot', ...SNAPSHOT_FIELDS, 'customerIndex'].indexOf(field);
      return [...found.values()].sort((a, b) =>
        a.balanceId === b.balanceId ? order(a.field) - order(b.field) : a.balanceId < b.balanceId ? -1 : 1,
      );
    },

    async compare(scanned: readonly string[]): Promise<void> {
      const balanceIds = scanned.filter((balanceId) => !seen.has(balanceId));
      balanceIds.forEach((balanceId) => seen.add(balanceId));
      const pipeline = redis.pipeline();
      for (const balanceId of balanceIds) {
        pipeline.hgetall(keys.balance(liveGeneration, balanceId));
        pipeline.hgetall(keys.balance(aside, balanceId));
      }
      const replies = (await pipeline.exec()) ?? [];
      const hashAt = (index: number): Hash | undefined => {
        const [error, hash] = replies[index] ?? [new Error('no reply')];
        if (error) throw error;
        return Object.keys(hash as Hash).length === 0 ? undefined : (hash as Hash);
      };
      const indexed: { balanceId: string; customerId: string }[] = [];
      balanceIds.forEach((balanceId, index) => {
        const liveHash = hashAt(2 * index);
        const rebuilt = hashAt(2 * index + 1);
        const livePosition = liveHash?.position;
        if (livePosition !== undefined && DIGITS.test(livePosition) && BigInt(livePosition) > checkpoint) {
          moved.set(balanceId, liveHash!);
          return;
        }
        compareHashes(balanceId, liveHash, rebuilt);
        if (rebuilt?.customerId !== undefined) customerOf.set(balanceId, rebuilt.customerId);
        if (liveHash !== undefined && rebuilt?.customerId !== undefined) indexed.push({ balanceId, customerId: rebuilt.customerId });
      });
      if (indexed.length > 0) await checkIndex(indexed);
    },

    async compareMoved(eventStore: EventStore): Promise<void> {
      const entries = [...moved.entries()];
      for (let start = 0; start < entries.length; start += CHUNK) {
        const chunk = entries.slice(start, start + CHUNK);
        const folded = await foldBalanceStreams(eventStore, new Map(chunk.map(([balanceId, hash]) => [balanceId, BigInt(hash.position!)])));
        const indexed: { balanceId: string; customerId: string }[] = [];
        for (const [balanceId, liveHash] of chunk) {
          const balance = folded.get(balanceId);
          compareHashes(balanceId, liveHash, balance && snapshotToHash(snapshotOf(balance)));
          if (balance !== undefined) {
            customerOf.set(balanceId, balance.state.customerId);
            indexed.push({ balanceId, customerId: balance.state.customerId });
          }
        }
        if (indexed.length > 0) await checkIndex(indexed);
      }
    },

    /**
     * The other direction of the index: every member of a live customer's set must be a balance
     * of that customer, or the API lists it under the wrong one (the sets are what it reads). A
     * member opened after the balances were scanned (the live projector goes on) is folded from
     * its stream up to its live snapshot's position to learn its customer.
     */
    async compareCustomers(customerIds: readonly string[], eventStore: EventStore): Promise<void> {
      const pipeline = redis.pipeline();
      for (const customerId of customerIds) pipeline.smembers(keys.customer(liveGeneration, customerId));
      const replies = (await pipeline.exec()) ?? [];
      const members = customerIds.flatMap((customerId, index) => {
        const [error, found] = replies[index] ?? [new Error('no reply')];
        if (error) throw error;
        return (found as string[]).map((balanceId) => ({ customerId, balanceId }));
      });
      const unknown = [...new Set(members.filter(({ balanceId }) => !customerOf.has(balanceId)).map(({ balanceId }) => balanceId))];
      for (let start = 0; start < unknown.length; start += CHUNK) {
        const chunk = unknown.slice(start, start + CHUNK);
        const positions = await Promise.all(chunk.map((balanceId) => redis.hget(keys.balance(liveGeneration, balanceId), 'position')));
        const late = new Map(chunk.flatMap((balanceId, index) => {
          const position = positions[index];
          return position != null && DIGITS.test(position) && BigInt(position) > checkpoint ? [[balanceId, BigInt(position)] as const] : [];
        }));
        if (late.size === 0) continue;
        for (const [balanceId, balance] of await foldBalanceStreams(eventStore, late)) {
          if (balance !== undefined) customerOf.set(balanceId, balance.state.customerId);
        }
      }
      for (const { customerId, balanceId } of members) {
        const belongsTo = customerOf.get(balanceId);
        if (belongsTo !== customerId) report({ balanceId, field: 'customerIndex', live: customerId, rebuilt: belongsTo ?? null });
      }
    },
  };
}
