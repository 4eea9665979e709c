import {
  ESTIMATED_DATE_BYTES,
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
 * name 2,000 and 1,687; a customer's list of one balance 512 and 397, of two 840 and 717.
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

/** A customer's cached list of balances: its key, the array, and each ref with its Date. */
export function estimatedBalanceRefsBytes(customerId: string, refs: readonly BalanceRef[]): number {
  let bytes = estimatedStringBytes(customerId) + estimatedArrayBytes(refs.length);
  for (const ref of refs) {
    bytes +=
      estimatedObjectBytes(4) +
      estimatedStringBytes(ref.id) +
      estimatedStringBytes(ref.customerId) +
      estimatedStringBytes(ref.productId) +
      ESTIMATED_DATE_BYTES;
  }
  return bytes;
}
