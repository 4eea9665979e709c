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

/**
 * Most events one command can cause: a change, a low-balance warning, a depletion, and the freed
 * hold of a capture or of usage that settles one.
 */
export const MAX_EVENTS_PER_COMMAND = 4;

/**
 * One part of a multi-part id: `%` and `:` are percent-escaped, so `:` only ever separates parts
 * and no two different tuples of parts join to the same id (subscription `s:x` with product `p`
 * against subscription `s` with product `x:p`). A part holding neither character encodes as
 * itself: every id that was already unambiguous before this encoding (UUID balance ids, usage
 * ids and keys without `:` or `%`) is unchanged, so the ledgers stored before the upgrade keep
 * deduplicating on their event ids. An id whose parts held `:` or `%` changes; usage stays
 * deduplicated anyway by the metered-usage record (migration 005, backfilled from the ledger).
 */
export function idPart(part: string): string {
  return part.includes('%') || part.includes(':') ? part.replaceAll('%', '%25').replaceAll(':', '%3A') : part;
}

/** Joins parts with `:`, each encoded by idPart: distinct tuples give distinct ids. */
export function joinIdParts(parts: readonly string[]): string {
  return parts.map(idPart).join(':');
}

/** The parts joinIdParts joined: `:` separates, and each part's escapes are undone. */
export function splitIdParts(id: string): string[] {
  // One pass, so an escape is never read as part of another (`%253A` is `%3A`, not `:`).
  return id.split(':').map((part) => part.replace(/%(25|3A)/g, (escape) => (escape === '%25' ? '%' : ':')));
}

/**
 * A hold's id: its balance and the Idempotency-Key it was placed with. Deterministic, so a
 * retried placement finds the hold it made; and it leads to the balance's stream without a
 * lookup (balanceIdOfHold), which is all capture, release and expiry need.
 */
export function holdIdOf(balanceId: string, idempotencyKey: string): string {
  return joinIdParts([balanceId, idempotencyKey]);
}

/** The balance a hold id belongs to, or undefined for a string no holdIdOf could have made. */
export function parseHoldId(holdId: string): { balanceId: string; idempotencyKey: string } | undefined {
  const parts = splitIdParts(holdId);
  if (parts.length !== 2 || holdIdOf(parts[0]!, parts[1]!) !== holdId || parts[0]!.length === 0 || parts[1]!.length === 0) return undefined;
  return { balanceId: parts[0]!, idempotencyKey: parts[1]! };
}

/**
 * Command ids: the name each ledger event id derives from (ledgerEventId). The first part names
 * the kind of command, so ids of different kinds never meet either.
 */
export const commandIds = {
  usage: (usageEventId: string, balanceId: string) => joinIdParts(['usage', balanceId, usageEventId]),
  open: (balanceId: string) => joinIdParts(['open', balanceId]),
  /** A request of the API; `operation` is one of top-up, deduction, purchase. */
  request: (balanceId: string, operation: string, idempotencyKey: string) => joinIdParts([operation, balanceId, idempotencyKey]),
  grant: (subscriptionId: string, productId: string, period: number) => joinIdParts(['grant', subscriptionId, productId, String(period)]),
  settings: (balanceId: string, nonce: string) => joinIdParts(['settings', balanceId, nonce]),
  /** One capture, one release and one expiry per hold at most: the hold id is the key, so each is idempotent. */
  holdCapture: (holdId: string) => joinIdParts(['hold-capture', holdId]),
  holdRelease: (holdId: string) => joinIdParts(['hold-release', holdId]),
  holdExpiry: (holdId: string) => joinIdParts(['hold-expiry', holdId]),
};

/**
 * The record that a usage event was metered (see the event store's append markers): one per
 * customer and usage id, whatever it charged. Kept in step with migration 005's backfill, which
 * derives the same string from the CreditConsumed events stored before it.
 */
export function meteredUsageMarker(customerId: string, usageEventId: string): string {
  return joinIdParts([customerId, usageEventId]);
}
