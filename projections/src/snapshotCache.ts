import type { FoldedBalance } from './foldedBalance';

/**
 * The balances a rebuild folded into its own aside generation, most recently folded last, so
 * the next batch takes them from memory instead of reading and parsing them from Redis.
 * Sound only for a generation with a single writer that starts empty: then, until the first
 * eviction, a balance that is not here is not in Redis either, and a rebuild over fewer
 * balances than the capacity never reads Redis at all. Balances go in when folded, before
 * their write lands: a rebuild retries a failed write with the same snapshots, and abandons
 * the generation, cache and all, when it cannot write it.
 */
export interface SnapshotCache {
  get(balanceId: string): FoldedBalance | undefined;
  set(folded: FoldedBalance): void;
  /** True while nothing was evicted: a miss is then a balance the generation does not hold. */
  readonly complete: boolean;
}

/** About 30 MB of balances. */
const DEFAULT_CAPACITY = 50_000;

export function createSnapshotCache(capacity = DEFAULT_CAPACITY): SnapshotCache {
  if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`snapshotCacheSize must be a non-negative integer; got ${capacity}`);
  const balances = new Map<string, FoldedBalance>();
  let complete = true;
  return {
    get: (balanceId) => balances.get(balanceId),
    set(folded) {
      const { balanceId } = folded.state;
      // Re-inserting moves the entry to the end: the map's order is the eviction order.
      balances.delete(balanceId);
      balances.set(balanceId, folded);
      if (balances.size > capacity) {
        balances.delete(balances.keys().next().value!);
        complete = false;
      }
    },
    get complete() {
      return complete;
    },
  };
}
