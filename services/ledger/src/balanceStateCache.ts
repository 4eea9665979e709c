import { LruCache, type FoldedBalance } from '@tally/domain';

/**
 * The consumer's memory of balances: state and revision per balance, so a batch decides without
 * reading streams. Least recently used entries go first once `capacity` is reached. An entry may
 * be stale (the API or another consumer appended since): the append's expected revision catches
 * that, and the consumer then drops the entry and reloads.
 */
export interface BalanceStateCache {
  get(balanceId: string): FoldedBalance | undefined;
  set(balanceId: string, balance: FoldedBalance): void;
  delete(balanceId: string): void;
  readonly size: number;
}

export function createBalanceStateCache(capacity: number): BalanceStateCache {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error('balance cache capacity must be a positive integer');
  return new LruCache<string, FoldedBalance>(capacity);
}
