import { createHash, hash as oneShotHash } from 'node:crypto';

/** Tally's UUID v5 namespace (itself a v5 of "tally" in the URL namespace); never change it. */
const TALLY_NAMESPACE = Buffer.from('6c1b7f9e5d0a5c3e9f4b2a1d8e7c6b5a', 'hex');

/** SHA-1 of bytes as hex: one-shot where Node has it (20.12+), no Hash object per id. */
function sha1Hex(data: Buffer): string {
  return typeof oneShotHash === 'function' ? oneShotHash('sha1', data, 'hex') : createHash('sha1').update(data).digest('hex');
}

/**
 * The namespace followed by a name's UTF-8, written into one buffer kept for the purpose: the
 * consumer derives ids per usage event and balance, and a Buffer.from and a Buffer.concat per id
 * were most of what deriving one allocated. Names longer than it get a buffer of their own.
 */
const scratch = Buffer.alloc(1024);
TALLY_NAMESPACE.copy(scratch, 0);
const NAMESPACE_BYTES = TALLY_NAMESPACE.length;

/** The variant (RFC 9562: 10xx) in the high nibble of byte 8, from the hash's own nibble there. */
const VARIANT_NIBBLE = ['8', '9', 'a', 'b'];

/**
 * UUID v5 (RFC 9562): the same name always gives the same id. Ledger event ids are derived
 * from what caused them (a usage event and a balance, an idempotency key, a grant period), so
 * a redelivered or replayed cause maps to an id the event store already holds and is not
 * written twice, however long after.
 */
export function deterministicId(name: string): string {
  let hex: string;
  if (Buffer.byteLength(name, 'utf8') <= scratch.length - NAMESPACE_BYTES) {
    const written = scratch.write(name, NAMESPACE_BYTES, 'utf8');
    hex = sha1Hex(scratch.subarray(0, NAMESPACE_BYTES + written));
  } else {
    hex = sha1Hex(Buffer.concat([TALLY_NAMESPACE, Buffer.from(name, 'utf8')]));
  }
  // The version (5) replaces the high nibble of byte 6 (hex digit 12); the variant the two top
  // bits of byte 8 (hex digit 16). The rest of the first 16 bytes is the hash as it is.
  const variant = VARIANT_NIBBLE[Number.parseInt(hex[16]!, 16) & 0x3]!;
  // Joined, not concatenated: join writes one flat string of 36 characters (64 bytes of heap),
  // where a template literal leaves a tree of cons strings that also keeps the hash's hex alive
  // (400 bytes). Ids live as long as their chunk, long enough to be promoted (docs/benchmarks.md,
  // 2026-12-03 morning).
  return [hex.slice(0, 8), hex.slice(8, 12), `5${hex.slice(13, 16)}`, `${variant}${hex.slice(17, 20)}`, hex.slice(20, 32)].join('-');
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
  // A loop, not map and join: the consumer joins a command id per usage event and balance.
  let id = parts.length === 0 ? '' : idPart(parts[0]!);
  for (let i = 1; i < parts.length; i += 1) id = `${id}:${idPart(parts[i]!)}`;
  return id;
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
  /** One refund per charge: the refunded entry's id is the key, so a second refund is the first one found again. */
  refund: (balanceId: string, entryId: string) => joinIdParts(['refund', balanceId, entryId]),
  /** One auto-recharge per low-balance warning: the warning's ledger event id is the key, so a warning handled again buys nothing more. */
  autoRecharge: (balanceId: string, warningEventId: string) => joinIdParts(['auto-recharge', balanceId, warningEventId]),
};

/**
 * The record that a usage event was metered (see the event store's append markers): one per
 * customer and usage id, whatever it charged. Kept in step with migration 005's backfill, which
 * derives the same string from the CreditConsumed events stored before it.
 */
export function meteredUsageMarker(customerId: string, usageEventId: string): string {
  return joinIdParts([customerId, usageEventId]);
}

/**
 * The fence of one keyed purchase request (its balance, Idempotency-Key and body's digest): a
 * purchase of the key appends it with its event, a refusal of the request records it alone, and
 * the store records it once (see LedgerService.refusePurchase). Prefixed, as a new kind of marker
 * must be, so it never meets a meteredUsageMarker; the digest is a part so that another body under
 * the same key (a client that keeps its key and accepts the new terms) is not fenced by the refusal.
 */
export function purchaseKeyMarker(balanceId: string, idempotencyKey: string, requestHash: string | undefined): string {
  return joinIdParts(['purchase-key', balanceId, idempotencyKey, requestHash ?? '']);
}
