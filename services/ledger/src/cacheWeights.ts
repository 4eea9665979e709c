import {
  estimatedArrayBytes,
  estimatedStringBytes,
  estimatedTextBytes,
} from '@tally/domain';
import type { BalanceRef } from './balanceRegistry';

/*
 * What the consumer's caches weigh per entry (LruCache's `weigh`): a conservative estimate of
 * the entry's V8 heap size counted from what it holds (strings by length, one object per
 * record), never by serialising it. Checked against the heap
 * (`process.memoryUsage().heapUsed` with and without an LruCache of 100,000 entries whose
 * strings are fresh from JSON, after full collections; Node 20): a balance's state as the state
 * cache keeps it, open without holds, estimates 292 bytes with the cache's own overhead and
 * takes 254; with 5 holds and a two-byte name 556 and 516; with one hold 347 and 309
 * (2026-12-02; as objects it took 549, one with 5 holds 1,687). A customer's kept balances
 * (KeptRefs, ids and product ids), one balance 300 and 180, two 388 and 196 (2026-12-03; as
 * BalanceRef objects with their Date they took 397 and 717 on 2026-11-30).
 */

/** A balance as the state cache keeps it (balanceStateCache.ts): its key and its state's text. */
export function estimatedCachedBalanceBytes(balanceId: string, text: string): number {
  return estimatedTextBytes(balanceId) + estimatedTextBytes(text);
}

/**
 * What the balance registry cache keeps of a customer's balances: per balance its id and its
 * product id (one string per product, shared through `productIds`), flattened into one array; the
 * customer id is the cache's key. BalanceRef objects are made again on each hit: short-lived
 * garbage instead of a resident object and a repeated customer id per balance.
 */
export type KeptRefs = readonly string[];

/** Product ids interned at most (a catalog is far smaller); past it the table starts again. */
const MAX_INTERNED_PRODUCT_IDS = 10_000;

export function keptRefs(refs: readonly BalanceRef[], productIds: Map<string, string>): KeptRefs {
  // Allocated at its size: an array grown by push keeps room for 17 elements at least.
  const kept = new Array<string>(refs.length * 2);
  let index = 0;
  for (const ref of refs) {
    let productId = productIds.get(ref.productId);
    if (productId === undefined) {
      if (productIds.size >= MAX_INTERNED_PRODUCT_IDS) productIds.clear();
      productId = ref.productId;
      productIds.set(productId, productId);
    }
    kept[index++] = ref.id;
    kept[index++] = productId;
  }
  return kept;
}

export function refsOfKept(customerId: string, kept: KeptRefs): BalanceRef[] {
  const refs: BalanceRef[] = [];
  for (let index = 0; index < kept.length; index += 2) refs.push({ id: kept[index]!, customerId, productId: kept[index + 1]! });
  return refs;
}

/**
 * A customer's kept balances: its key, the array, and per balance its id (the shared product ids
 * are counted by the interning table's bound, not per entry).
 */
export function weighKeptRefs(customerId: string, kept: KeptRefs): number {
  let bytes = estimatedStringBytes(customerId) + estimatedArrayBytes(kept.length);
  for (let index = 0; index < kept.length; index += 2) bytes += estimatedStringBytes(kept[index]!);
  return bytes;
}
