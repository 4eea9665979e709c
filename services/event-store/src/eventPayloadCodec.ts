import type { JsonObject, JsonValue } from './eventStore';

/**
 * The compact payload encoding of the PostgreSQL store (migration 017): an event's type and
 * data become a shape, stored once per store, and a body, the JSON array of the data's values in
 * shape order. The shape lists the data's keys in their order, nested objects as nested shapes,
 * and how each value is written:
 *
 * - 'n': a decimal string that a JSON number spells the same ("1.5", "-20", "0.000001"), written
 *   as that number: String(Number(text)) gives it back exactly (no exponent, no leading or
 *   trailing zeros, at most 15 digits and 6 fractional ones);
 * - 't': a time as toISOString() writes it (years 1000 to 9999): the body's first as epoch
 *   milliseconds, every later one as milliseconds after the first (a usage charge's two times
 *   are usually close: "0" instead of 13 digits);
 * - 'z': null, written nowhere (the shape says it);
 * - 'v': any other value, as JSON.
 *
 * Lossless for every JSON object: decode(encode(x)) has x's keys, values and (for keys the
 * shape orders) order. The same encoding is written in SQL (017's es_pack and es_unpack) for
 * the conversion of existing rows and the `events` view; either decodes the other's rows.
 */
type ValueKind = 'v' | 'n' | 't' | 'z';
export type ObjectShape = readonly (readonly [string, ValueKind | ObjectShape])[];
/** [type, data shape], as stored in event_shapes. */
export type EventShape = readonly [string, ObjectShape];

interface EncodedPayload {
  /** JSON of the EventShape: the key under which a store registers it. */
  readonly shapeKey: string;
  readonly body: string;
}

const COMPACT_DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d{0,5}[1-9])?$/;
const ISO_MILLIS = /^[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;

function isCompactDecimal(text: string): boolean {
  if (!COMPACT_DECIMAL.test(text) || text === '-0') return false;
  let digits = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) digits += 1;
  }
  return digits <= 15 && String(Number(text)) === text;
}

function isoMillis(text: string): number | undefined {
  if (text.length !== 24 || !ISO_MILLIS.test(text)) return undefined;
  const millis = Date.parse(text);
  // Rejects what Date.parse normalises (02-30 would become 03-02).
  return Number.isNaN(millis) || new Date(millis).toISOString() !== text ? undefined : millis;
}

const isPlainObject = (value: JsonValue | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The body's values so far, and its first time (the base of the later ones). */
interface Packing {
  readonly parts: string[];
  base: number | undefined;
}

function packObject(object: JsonObject, packing: Packing): ObjectShape {
  const { parts } = packing;
  const shape: (readonly [string, ValueKind | ObjectShape])[] = [];
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (value === undefined) continue; // as JSON.stringify drops it
    if (isPlainObject(value)) {
      shape.push([key, packObject(value, packing)]);
    } else if (value === null) {
      shape.push([key, 'z']);
    } else if (typeof value === 'string' && isCompactDecimal(value)) {
      shape.push([key, 'n']);
      parts.push(value);
    } else {
      const millis = typeof value === 'string' ? isoMillis(value) : undefined;
      if (millis !== undefined) {
        shape.push([key, 't']);
        if (packing.base === undefined) {
          packing.base = millis;
          parts.push(String(millis));
        } else {
          parts.push(String(millis - packing.base));
        }
      } else {
        shape.push([key, 'v']);
        parts.push(JSON.stringify(value));
      }
    }
  }
  return shape;
}

export function encodePayload(type: string, data: JsonObject): EncodedPayload {
  const packing: Packing = { parts: [], base: undefined };
  const shape: EventShape = [type, packObject(data, packing)];
  return { shapeKey: JSON.stringify(shape), body: `[${packing.parts.join(',')}]` };
}

function unpackObject(shape: ObjectShape, values: readonly JsonValue[], at: { index: number; base: number | undefined }): JsonObject {
  const object: JsonObject = {};
  for (const [key, kind] of shape) {
    let decoded: JsonValue;
    if (typeof kind !== 'string') {
      decoded = unpackObject(kind, values, at);
    } else if (kind === 'z') {
      decoded = null;
    } else {
      const value = values[at.index];
      at.index += 1;
      if (value === undefined) throw new Error(`event body has fewer values than its shape (at ${key})`);
      if (kind === 't') {
        const millis = at.base === undefined ? (value as number) : at.base + (value as number);
        at.base ??= millis;
        decoded = new Date(millis).toISOString();
      } else {
        decoded = kind === 'n' ? String(value) : value;
      }
    }
    // An own property even for "__proto__", as JSON.parse makes it.
    if (key === '__proto__') Object.defineProperty(object, key, { value: decoded, enumerable: true, writable: true, configurable: true });
    else object[key] = decoded;
  }
  return object;
}

export function decodePayload(shape: EventShape, body: string): { type: string; data: JsonObject } {
  const values = JSON.parse(body) as JsonValue[];
  const at = { index: 0, base: undefined as number | undefined };
  const data = unpackObject(shape[1], values, at);
  if (at.index !== values.length) throw new Error(`event body has ${values.length} values, its shape ${at.index}`);
  return { type: shape[0], data };
}

/** A stored shape (jsonb from event_shapes) checked into an EventShape. */
export function toEventShape(stored: unknown): EventShape {
  const isObjectShape = (value: unknown): value is ObjectShape =>
    Array.isArray(value) &&
    value.every(
      (entry) =>
        Array.isArray(entry) &&
        entry.length === 2 &&
        typeof entry[0] === 'string' &&
        (entry[1] === 'v' || entry[1] === 'n' || entry[1] === 't' || entry[1] === 'z' || isObjectShape(entry[1])),
    );
  if (!Array.isArray(stored) || stored.length !== 2 || typeof stored[0] !== 'string' || !isObjectShape(stored[1])) {
    throw new Error(`not an event shape: ${JSON.stringify(stored).slice(0, 200)}`);
  }
  return stored as unknown as EventShape;
}
