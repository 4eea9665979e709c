import { createHash } from 'node:crypto';

type Canonical = string | number | boolean | null | readonly Canonical[] | { readonly [key: string]: Canonical };

/** JSON with object keys sorted at every level, so equal requests serialise to equal text. */
function canonicalJson(value: Canonical): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as { readonly [key: string]: Canonical };
  const fields = Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key]!)}`);
  return `{${fields.join(',')}}`;
}

/**
 * The digest stored with the events an idempotent request caused. Callers pass the request in
 * normalised form (amounts re-formatted, defaults filled), so "10" and "10.0" are one request
 * and a retry that spells the same amount differently is not refused as another.
 */
export function requestHash(request: Canonical): string {
  return createHash('sha256').update(canonicalJson(request), 'utf8').digest('hex');
}

/** What the ledger takes for a request's Idempotency-Key: the key and the digest of the normalised request; none without a key. */
export function idempotencyOf(idempotencyKey: string | undefined, request: Canonical): { idempotencyKey: string; requestHash: string } | undefined {
  return idempotencyKey === undefined ? undefined : { idempotencyKey, requestHash: requestHash(request) };
}
