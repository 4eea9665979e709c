import {
  ESTIMATED_NUMBER_BYTES,
  estimatedArrayBytes,
  estimatedBigIntBytes,
  estimatedObjectBytes,
  estimatedStringBytes,
  type FoldedBalance,
} from '@tally/domain';
import type { BalanceRef } from './balanceRegistry';

/*
 * What the consumer's caches weigh per entry (LruCache's `weigh`): a conservative estimate of
 * the entry's V8 heap size counted from what it holds (strings by length, one object per
 * record, a bigint per amount, each open hold), never by serialising it. Checked against the
 * heap (`process.memoryUsage().heapUsed` before and after filling an LruCache with 100,000
 * entries of strings fresh from JSON, after full collections; Node 20, 2026-11-30): an open
 * balance without holds estimates 760 bytes and takes 549; one with 5 holds and a two-byte
 * name 2,000 and 1,687; a customer's kept balances (KeptRefs), one balance 296 and 237, two
 * 392 and 317 (as BalanceRef objects they took 397 and 717).
 */

/** A cached balance state: its key, the FoldedBalance and, when open, everything the state holds. */
export function estimatedBalanceBytes(balanceId: string, balance: FoldedBalance): number {
  let bytes = estimatedStringBytes(balanceId) + estimatedObjectBytes(2) + estimatedBigIntBytes(balance.revision);
  const state = balance.state;
  if (state.status !== 'open') return bytes + estimatedObjectBytes(1);
  bytes +=
    estimatedObjectBytes(13) +
    estimatedStringBytes(state.balanceId) +
    estimatedStringBytes(state.customerId) +
    estimatedStringBytes(state.productId) +
    estimatedStringBytes(state.name) +
    estimatedStringBytes(state.updatedAt) +
    estimatedBigIntBytes(state.balance) +
    estimatedBigIntBytes(state.held) +
    estimatedBigIntBytes(state.overdraftLimit) +
    (state.lowBalanceThreshold === null ? 0 : estimatedBigIntBytes(state.lowBalanceThreshold));
  // The holds record: an object of 4 slots when empty; with holds, a dictionary of 3 slots each.
  const holds = Object.entries(state.holds);
  bytes += estimatedObjectBytes(4) + 24 * holds.length;
  for (const [holdId, hold] of holds) {
    bytes +=
      estimatedStringBytes(holdId) +
      estimatedObjectBytes(3) +
      estimatedBigIntBytes(hold.credits) +
      estimatedStringBytes(hold.expiresAt) +
      (hold.reference === null ? 0 : estimatedStringBytes(hold.reference));
  }
  return bytes;
}

/**
 * What the balance registry cache keeps of a customer's balances: per balance its id, its
 * product id (one string per product, shared through `productIds`) and its creation time in
 * milliseconds, flattened into one array; the customer id is the cache's key. BalanceRef objects
 * with their Date are made again on each hit: short-lived garbage instead of a resident object,
 * a Date and a repeated customer id per balance.
 */
export type KeptRefs = readonly (string | number)[];

/** Product ids interned at most (a catalog is far smaller); past it the table starts again. */
const MAX_INTERNED_PRODUCT_IDS = 10_000;

export function keptRefs(refs: readonly BalanceRef[], productIds: Map<string, string>): KeptRefs {
  // Allocated at its size: an array grown by push keeps room for 17 elements at least.
  const kept = new Array<string | number>(refs.length * 3);
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
    kept[index++] = ref.createdAt.getTime();
  }
  return kept;
}

export function refsOfKept(customerId: string, kept: KeptRefs): BalanceRef[] {
  const refs: BalanceRef[] = [];
  for (let index = 0; index < kept.length; index += 3) {
    refs.push({ id: kept[index] as string, customerId, productId: kept[index + 1] as string, createdAt: new Date(kept[index + 2] as number) });
  }
  return refs;
}

/**
 * A customer's kept balances: its key, the array, and per balance its id and the boxed number of
 * its time (the shared product ids are counted by the interning table's bound, not per entry).
 */
export function weighKeptRefs(customerId: string, kept: KeptRefs): number {
  let bytes = estimatedStringBytes(customerId) + estimatedArrayBytes(kept.length);
  for (let index = 0; index < kept.length; index += 3) bytes += estimatedStringBytes(kept[index] as string) + ESTIMATED_NUMBER_BYTES;
  return bytes;
}
