import { isoFromMillis } from '@tally/domain';
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

// The encoder runs for every appended event (the metering consumer's hot path): the checks
// below are written as single passes over the characters, with no regular expression, no Date
// round trip and no shape objects built only to be stringified. Their definitions (the same
// as 017's SQL, es_is_compact_decimal and es_iso_millis) are the regular expressions the unit
// spec checks them against.

const DIGIT_0 = 48;
const DIGIT_9 = 57;
const isDigit = (code: number): boolean => code >= DIGIT_0 && code <= DIGIT_9;

/** ^-?(0|[1-9][0-9]*)(\.[0-9]{0,5}[1-9])?$, not "-0", at most 15 digits. */
function isCompactDecimal(text: string): boolean {
  const length = text.length;
  let i = text.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  if (i >= length) return false;
  const first = text.charCodeAt(i);
  if (!isDigit(first)) return false;
  let digits = 1;
  i += 1;
  if (first !== DIGIT_0) {
    while (i < length && isDigit(text.charCodeAt(i))) {
      i += 1;
      digits += 1;
    }
  } else if (i === length && length === 2) {
    return false; // "-0"
  }
  if (i < length) {
    if (text.charCodeAt(i) !== 46 /* . */) return false;
    const fractionStart = i + 1;
    const fraction = length - fractionStart;
    if (fraction < 1 || fraction > 6) return false;
    for (let j = fractionStart; j < length; j += 1) if (!isDigit(text.charCodeAt(j))) return false;
    if (text.charCodeAt(length - 1) === DIGIT_0) return false;
    digits += fraction;
  }
  // At most 15 digits, 6 of them fractional, in the canonical form checked above: String(Number(text))
  // gives the text back, which the unit spec checks as a property instead of every call here (it
  // was most of this function's time; docs/benchmarks.md, 2026-12-03 midday). A double keeps any
  // 15 significant digits (DBL_DIG), so no shorter text names the same double, and between 1e-6
  // and 1e15 a number's text has no exponent.
  return digits <= 15;
}

/** The number written by the digits of text from `from` to `to` (all digits: checked before). */
function digitsAt(text: string, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i += 1) value = value * 10 + (text.charCodeAt(i) - DIGIT_0);
  return value;
}

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;

/**
 * Epoch milliseconds of a time as toISOString() writes it, years 1000 to 9999, or undefined:
 * ^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$ and a
 * day its month has (02-30 is not a time).
 */
function isoMillis(text: string): number | undefined {
  if (text.length !== 24 || text.charCodeAt(23) !== 90 /* Z */ || text.charCodeAt(10) !== 84 /* T */) return undefined;
  for (let i = 0; i < 23; i += 1) {
    const code = text.charCodeAt(i);
    // YYYY-MM-DDTHH:MM:SS.mmm: a fixed character at 4, 7, 10, 13, 16 and 19, digits elsewhere.
    if (i === 4 || i === 7) {
      if (code !== 45 /* - */) return undefined;
    } else if (i === 13 || i === 16) {
      if (code !== 58 /* : */) return undefined;
    } else if (i === 19) {
      if (code !== 46 /* . */) return undefined;
    } else if (i !== 10 && !isDigit(code)) {
      return undefined;
    }
  }
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 7);
  const day = digitsAt(text, 8, 10);
  const hour = digitsAt(text, 11, 13);
  const minute = digitsAt(text, 14, 16);
  const second = digitsAt(text, 17, 19);
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, digitsAt(text, 20, 23));
}

const isPlainObject = (value: JsonValue | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The body's values so far (joined by commas as they come), and its first time (the base of the later ones). */
interface Packing {
  body: string;
  values: number;
  base: number | undefined;
}

/** JSON of each key met, by key: a payload's keys are few and repeat in every event. */
const keyJson = new Map<string, string>();
const MAX_KEY_JSON = 10_000;
function jsonOfKey(key: string): string {
  let json = keyJson.get(key);
  if (json === undefined) {
    json = JSON.stringify(key);
    if (keyJson.size >= MAX_KEY_JSON) keyJson.clear();
    keyJson.set(key, json);
  }
  return json;
}

const addValue = (packing: Packing, text: string): void => {
  packing.body = packing.values === 0 ? text : `${packing.body},${text}`;
  packing.values += 1;
};

/** A value's kind, its text added to the body (objects are the caller's). */
function packScalar(value: JsonValue, packing: Packing): 'v' | 'n' | 't' | 'z' {
  if (value === null) return 'z';
  if (typeof value === 'string' && isCompactDecimal(value)) {
    addValue(packing, value);
    return 'n';
  }
  const millis = typeof value === 'string' ? isoMillis(value) : undefined;
  if (millis === undefined) {
    addValue(packing, JSON.stringify(value));
    return 'v';
  }
  if (packing.base === undefined) {
    packing.base = millis;
    addValue(packing, String(millis));
  } else {
    addValue(packing, String(millis - packing.base));
  }
  return 't';
}

/**
 * The object's values added to the body, and its shape's JSON: written as JSON.stringify would
 * write the ObjectShape ([[key, kind], ...]), so that the key under which a store registers a
 * shape is unchanged. Run only for a shape the trie below has not met.
 */
function packObject(object: JsonObject, packing: Packing): string {
  let shape = '[';
  let first = true;
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (value === undefined) continue; // as JSON.stringify drops it
    const kind = isPlainObject(value) ? packObject(value, packing) : `"${packScalar(value, packing)}"`;
    shape = `${shape}${first ? '' : ','}[${jsonOfKey(key)},${kind}]`;
    first = false;
  }
  return `${shape}]`;
}

/**
 * The shapes met so far as a trie of steps, one per key and kind in the data's order (an object
 * value a step of kind 'o', its end a step of its own): an event whose shape was met before
 * finds its key at the end of its walk, with no shape text written. Its shapes repeat (a ledger
 * has a dozen types), and writing each event's shape JSON anew was the largest share of what the
 * metering consumer allocated (docs/benchmarks.md).
 */
interface ShapeStep {
  readonly next: Map<string, Partial<Record<'v' | 'n' | 't' | 'z' | 'o', ShapeStep>>>;
  end: ShapeStep | undefined;
  /** At the end of a type's whole data: the shape key. */
  shapeKey: string | undefined;
}
const shapeRoots = new Map<string, ShapeStep>();
/** A bound on the trie (data with ever-new keys would grow it): past it, it starts again. */
const MAX_SHAPE_STEPS = 50_000;
let shapeSteps = 0;
function newStep(): ShapeStep {
  shapeSteps += 1;
  return { next: new Map(), end: undefined, shapeKey: undefined };
}

function stepTo(from: ShapeStep, key: string, kind: 'v' | 'n' | 't' | 'z' | 'o'): ShapeStep {
  let byKind = from.next.get(key);
  if (byKind === undefined) {
    byKind = {};
    from.next.set(key, byKind);
  }
  return (byKind[kind] ??= newStep());
}

/** The object's values added to the body; the step its shape leads to from `at`. */
function packValues(object: JsonObject, packing: Packing, at: ShapeStep): ShapeStep {
  let step = at;
  // for...in with an own-key check walks Object.keys' order without allocating its array.
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const value = object[key];
    if (value === undefined) continue; // as JSON.stringify drops it
    step = isPlainObject(value) ? packValues(value, packing, stepTo(step, key, 'o')) : stepTo(step, key, packScalar(value, packing));
  }
  return (step.end ??= newStep());
}

export function encodePayload(type: string, data: JsonObject): EncodedPayload {
  if (shapeSteps > MAX_SHAPE_STEPS) {
    shapeRoots.clear();
    shapeSteps = 0;
  }
  let root = shapeRoots.get(type);
  if (root === undefined) {
    root = newStep();
    shapeRoots.set(type, root);
  }
  const packing: Packing = { body: '', values: 0, base: undefined };
  const last = packValues(data, packing, root);
  // A shape met for the first time: its JSON written once (its values a second time, discarded).
  last.shapeKey ??= `[${JSON.stringify(type)},${packObject(data, { body: '', values: 0, base: undefined })}]`;
  return { shapeKey: last.shapeKey, body: `[${packing.body}]` };
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
        decoded = isoFromMillis(millis);
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
