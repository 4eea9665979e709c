import { LruCache } from '@tally/domain';
import type { PositionedBalance } from './positionedBalance';

/**
 * The balances a writer folded, most recently folded last, so the next batch takes them from
 * memory instead of reading and parsing them from Redis. A folded balance is the fold of its
 * stream up to its position, whoever else writes Redis, so a hit is always sound for a writer
 * that folds the log in order. Balances go in when folded, before their write lands: a writer
 * retries a failed write with the same prepared snapshots (never by folding again onto what
 * the cache already holds), and drops the cache whenever it starts projecting from a
 * checkpoint again (a rollback, a flush, a switch), since Redis then holds less than it does.
 *
 * A miss is a balance the generation does not hold only for a rebuild's aside generation,
 * which starts empty and has a single writer (`startsEmpty`): then, until the first eviction,
 * a rebuild over fewer balances than the capacity never reads Redis at all. The live projector
 * reads its misses from Redis.
 */
export interface SnapshotCache {
  get(balanceId: string): PositionedBalance | undefined;
  set(folded: PositionedBalance): void;
  /** True for a cache made `startsEmpty` while nothing was evicted: a miss is then a balance the generation does not hold. */
  readonly complete: boolean;
  /** Balances it holds at most: a rebuild writes its folded balances before this many could push one out. */
  readonly capacity: number;
}

/** About 30 MB of balances. */
const DEFAULT_CAPACITY = 50_000;

export function createSnapshotCache(capacity = DEFAULT_CAPACITY, { startsEmpty = true }: { readonly startsEmpty?: boolean } = {}): SnapshotCache {
  if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`snapshotCacheSize must be a non-negative integer; got ${capacity}`);
  let complete = startsEmpty;
  // lru-cache drops its least recently used entry in constant time. A Map re-inserted on each set
  // and trimmed from its front walks every slot its deletions left there on each eviction: the
  // consumer's write-behind ids did so and took 14 % of its time past 100,000 balances
  // (docs/benchmarks.md, 2026-12-02 late morning).
  const balances = capacity === 0 ? undefined : new LruCache<string, PositionedBalance>({ maxEntries: capacity, onEvict: () => (complete = false) });
  return {
    // peek: the order is that of writing (every get is followed by a set of the balance folded on).
    get: (balanceId) => balances?.peek(balanceId),
    set(folded) {
      if (balances === undefined) complete = false;
      else balances.set(folded.state.balanceId, folded);
    },
    get complete() {
      return complete;
    },
    capacity,
  };
}
