import type { JsonObject, JsonValue } from './eventStore';
import type { StreamHeader } from './streamHeaders';

/** jsonb's order of an object's keys: shorter (in UTF-8 bytes) first, then bytewise (PostgreSQL's lengthCompareJsonbString). */
export function compareJsonbKeys(a: string, b: string): number {
  const aLength = Buffer.byteLength(a);
  const bLength = Buffer.byteLength(b);
  if (aLength !== bLength) return aLength - bLength;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A value handed to one caller only: the header's nested objects are shared by its stream's events. */
const own = (value: JsonValue): JsonValue => (typeof value === 'object' && value !== null ? (structuredClone(value) as JsonValue) : value);

function put(object: JsonObject, key: string, value: JsonValue): void {
  // An own property even for "__proto__", as JSON.parse makes it.
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

/**
 * An event's metadata from its stream's header (its keys in jsonb order, as PostgreSQL lists
 * them), the header keys it lacks (bit i: the i-th key; null: none) and the keys whose values
 * differ (null: none): exactly what 017's `es_decode_metadata(header, meta, meta_absent)`
 * returns, `(header - absent keys) || meta`, in Node instead of per row in the read query (the
 * reverse of streamHeaders.ts's reduceMetadata). Keys in the order jsonb's text, parsed, gives.
 */
export function decodeStoredMetadata({ keys, header }: StreamHeader, absent: number | null, meta: JsonObject | null): JsonObject {
  const metadata: JsonObject = {};
  if (meta === null) {
    for (let index = 0; index < keys.length; index += 1) {
      if (absent !== null && (absent & (1 << index)) !== 0) continue;
      put(metadata, keys[index]!, own(header[keys[index]!]!));
    }
    return metadata;
  }
  const merged = new Map<string, JsonValue>();
  for (let index = 0; index < keys.length; index += 1) {
    if (absent !== null && (absent & (1 << index)) !== 0) continue;
    merged.set(keys[index]!, header[keys[index]!]!);
  }
  // jsonb `||`: the right operand's value wins.
  for (const key of Object.keys(meta)) merged.set(key, meta[key]!);
  for (const key of [...merged.keys()].sort(compareJsonbKeys)) put(metadata, key, own(merged.get(key)!));
  return metadata;
}
