import { createHash, hash as oneShotHash } from 'node:crypto';

/** Tally's UUID v5 namespace (itself a v5 of "tally" in the URL namespace); never change it. */
const TALLY_NAMESPACE = Buffer.from('6c1b7f9e5d0a5c3e9f4b2a1d8e7c6b5a', 'hex');

function createHashOnce(data: Buffer): Buffer {
  // crypto.hash exists from Node 20.12; older 20.x fall back to a Hash object.
  return typeof oneShotHash === 'function'
    ? (oneShotHash('sha1', data, 'buffer') as unknown as Buffer)
    : createHash('sha1').update(data).digest();
}

/**
 * UUID v5 (RFC 9562): the same name always gives the same id. Ledger event ids are derived
 * from what caused them (a usage event and a balance, an idempotency key, a grant period), so
 * a redelivered or replayed cause maps to an id the event store already holds and is not
 * written twice, however long after.
 */
export function deterministicId(name: string): string {
  // One-shot hashing: the consumer derives an id per usage event and balance, and a Hash
  // object per id showed up in its CPU profile.
  const hash = createHashOnce(Buffer.concat([TALLY_NAMESPACE, Buffer.from(name, 'utf8')]));
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Id of the index-th event caused by a command: the first one marks the command as done. */
export function ledgerEventId(commandId: string, index: number): string {
  return deterministicId(`${commandId}#${index}`);
}

/** Most events one command can cause (a change, a low-balance warning, a depletion). */
export const MAX_EVENTS_PER_COMMAND = 3;

export const commandIds = {
  usage: (usageEventId: string, balanceId: string) => `usage:${balanceId}:${usageEventId}`,
  open: (balanceId: string) => `open:${balanceId}`,
  request: (balanceId: string, operation: string, idempotencyKey: string) => `${operation}:${balanceId}:${idempotencyKey}`,
  grant: (subscriptionId: string, productId: string, period: number) => `grant:${subscriptionId}:${productId}:${period}`,
};
