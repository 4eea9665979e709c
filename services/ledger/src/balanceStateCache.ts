import type { LoadedBalance } from './balanceLoader';

/**
 * The consumer's memory of balances: state and revision per balance, so a batch decides without
 * reading streams. Least recently used entries go first once `capacity` is reached. An entry may
 * be stale (the API or another consumer appended since): the append's expected revision catches
 * that, and the consumer then drops the entry and reloads.
 */
export interface BalanceStateCache {
  get(balanceId: string): LoadedBalance | undefined;
  set(balanceId: string, balance: LoadedBalance): void;
  delete(balanceId: string): void;
  readonly size: number;
}

export function createBalanceStateCache(capacity: number): BalanceStateCache {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error('balance cache capacity must be a positive integer');
  // A Map iterates in insertion order: re-inserting on use keeps the least recent entry first.
  const entries = new Map<string, LoadedBalance>();
  return {
    get(balanceId) {
      const balance = entries.get(balanceId);
      if (balance !== undefined) {
        entries.delete(balanceId);
        entries.set(balanceId, balance);
      }
      return balance;
    },
    set(balanceId, balance) {
      entries.delete(balanceId);
      entries.set(balanceId, balance);
      if (entries.size > capacity) entries.delete(entries.keys().next().value!);
    },
    delete(balanceId) {
      entries.delete(balanceId);
    },
    get size() {
      return entries.size;
    },
  };
}
