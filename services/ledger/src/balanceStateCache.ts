import { LruCache, type FoldedBalance } from '@tally/domain';
import { estimatedBalanceBytes } from './cacheWeights';

/**
 * The consumer's memory of balances: state and revision per balance, so a batch decides without
 * reading streams. Least recently used entries go first once `capacity` is reached. An entry may
 * be stale (the API or another consumer appended since): the append's expected revision catches
 * that, and the consumer then drops the entry and reloads.
 */
export interface BalanceStateCache {
  get(balanceId: string): FoldedBalance | undefined;
  /** The entry without making it the most recently used (the write-behind flush reads this way). */
  peek(balanceId: string): FoldedBalance | undefined;
  set(balanceId: string, balance: FoldedBalance): void;
  delete(balanceId: string): void;
  readonly size: number;
}

/** Balances kept (`maxEntries`), estimated bytes they may take (`maxBytes`, see cacheWeights.ts), or both. */
export interface BalanceStateCacheBounds {
  readonly maxEntries?: number;
  readonly maxBytes?: number;
}

/** A number is a count of balances, as before bytes could bound the cache. */
export function createBalanceStateCache(bounds: number | BalanceStateCacheBounds): BalanceStateCache {
  const { maxEntries, maxBytes } = typeof bounds === 'number' ? { maxEntries: bounds, maxBytes: undefined } : bounds;
  for (const [value, what] of [[maxEntries, 'capacity'], [maxBytes, 'byte budget']] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new Error(`balance cache ${what} must be a positive integer`);
  }
  // Admitted by frequency once full: a pass over more balances than it holds (usage met in turn,
  // a backfill) would otherwise evict every state before its next use, so that nothing hits and
  // every load's state is promoted and collected (docs/benchmarks.md, 2026-12-02 midday). A state
  // not admitted is read again when next needed, like one evicted.
  return new LruCache<string, FoldedBalance>({
    admission: 'frequency',
    ...(maxEntries !== undefined ? { maxEntries } : {}),
    ...(maxBytes !== undefined ? { maxBytes, weigh: estimatedBalanceBytes } : {}),
  });
}
