import { InvalidInstantError, InvalidUsageEventError } from './errors';
import { isoInstantOf } from './isoInstantOf';
import { isWellFormedText, textLength } from './wellFormedText';

export type PropertyValue = null | boolean | number | string;

/** A usage event as the metering core sees it, whatever its wire format (Avro or JSON). */
export interface UsageEvent {
  /** The producer's idempotency key: unique per usage event. */
  readonly id: string;
  readonly customerId: string;
  /** The name consumption rules match, e.g. `api_call`. */
  readonly event: string;
  /** When the usage happened, epoch milliseconds. */
  readonly timestamp: number;
  readonly properties: Readonly<Record<string, PropertyValue>>;
}

/** The most characters (code points) a usage event's id, customer id or event name has. */
export const MAX_USAGE_TEXT = 256;
const MAX_TEXT = MAX_USAGE_TEXT;

/**
 * Whether a text fits a usage event's id, customer id or event name by length: 1 to MAX_USAGE_TEXT
 * characters, counted as the API's schema counts them (code points, textLength). The one length
 * rule of every reader of usage (the parser, a CloudEvent's joined id, a dead letter's identity).
 */
export function isUsageTextLength(value: string): boolean {
  return value.length > 0 && textLength(value) <= MAX_USAGE_TEXT;
}
/** Timestamps outside 1970..2200 are mistakes (garbage). */
const MAX_TIMESTAMP = Date.UTC(2200, 0, 1);
/**
 * Below this an epoch number can only be seconds sent for milliseconds (1973-03-03 in ms; as
 * seconds, the year 5138): charged as 1970 it would land in a long closed month, so it is refused.
 */
const MIN_EPOCH_MILLIS = 100_000_000_000;
/**
 * How deep a usage event may nest objects and arrays, the event itself the first level (its
 * properties the second). Nested data is never read (propertiesOf leaves it out), but whatever
 * handles the event whole recurses: JSON.stringify (the API's copy for the topic) overflows the
 * stack at a few thousand levels, a 10 KB body, while JSON.parse reads any depth. Refused as
 * invalid, so the API refuses that event alone and the consumer dead-letters it.
 */
export const MAX_USAGE_EVENT_DEPTH = 64;

/**
 * Refuses a record that nests deeper than MAX_USAGE_EVENT_DEPTH. Iterative, with a stack of its
 * own, so a record a million levels deep is refused rather than overflowing this check. Decoded
 * JSON and Avro are trees: each object is visited once, and the walk stops at the limit.
 */
export function assertUsageEventDepth(record: unknown): void {
  if (record === null || typeof record !== 'object') return;
  const pending: object[] = [record];
  const depths: number[] = [1];
  while (pending.length > 0) {
    const value = pending.pop()!;
    const depth = depths.pop()!;
    if (depth > MAX_USAGE_EVENT_DEPTH) {
      throw new InvalidUsageEventError(`the usage event nests objects and arrays deeper than ${MAX_USAGE_EVENT_DEPTH} levels (the event itself the first)`);
    }
    // Bytes (an Avro `bytes` field) are a value, not nesting.
    if (ArrayBuffer.isView(value)) continue;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child === null || typeof child !== 'object') continue;
      pending.push(child as object);
      depths.push(depth + 1);
    }
  }
}

/** The branch names an Avro union of primitives is wrapped in ({ long: 5 }); any other object is nested data. */
const AVRO_BRANCHES = new Set(['boolean', 'int', 'long', 'float', 'double', 'string']);

function text(record: Record<string, unknown>, field: string): string {
  const value = record[field];
  if (typeof value !== 'string') throw new InvalidUsageEventError(`${field} is missing or not a string`);
  if (!isUsageTextLength(value)) {
    throw new InvalidUsageEventError(`${field} must be 1-${MAX_TEXT} characters`);
  }
  // PostgreSQL text and jsonb cannot hold U+0000: an id with one can never be looked up or
  // stored, and the consumer would retry its batch forever instead of dead-lettering it.
  if (value.includes('\u0000')) throw new InvalidUsageEventError(`${field} contains the character U+0000`);
  if (!isWellFormedText(value)) throw new InvalidUsageEventError(`${field} is not well-formed Unicode (it holds a lone surrogate)`);
  return value;
}

/** The strict reading of every time Tally is given, as the consumer's own error: it dead-letters by that type. */
function isoTimestampOf(text: string, field: string): number {
  try {
    return isoInstantOf(text, field);
  } catch (error) {
    if (error instanceof InvalidInstantError) throw new InvalidUsageEventError(error.message, { cause: error });
    throw error;
  }
}

/**
 * A usage event's timestamp as epoch milliseconds, as the consumer reads it; the messages begin
 * with `field`. A number is read more strictly than ISO text (MIN_EPOCH_MILLIS), so `tally send`,
 * which always sends a number, reads its --timestamp here and then the number it will send.
 */
export function usageTimestampOf(value: unknown, field = 'timestamp'): number {
  let millis: number;
  if (typeof value === 'number') millis = value;
  else if (typeof value === 'bigint') millis = Number(value);
  else if (value instanceof Date) millis = value.getTime();
  else if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/i.test(value)) millis = isoTimestampOf(value, field);
  else throw new InvalidUsageEventError(`${field} must be epoch milliseconds or an ISO-8601 string`);
  if (!Number.isSafeInteger(millis) || millis < 0 || millis > MAX_TIMESTAMP) {
    throw new InvalidUsageEventError(`${field} is not a valid time between 1970 and 2200`);
  }
  if (typeof value !== 'string' && millis < MIN_EPOCH_MILLIS) {
    throw new InvalidUsageEventError(`${field} ${millis} looks like epoch seconds: send epoch milliseconds (or ISO-8601)`);
  }
  return millis;
}

/**
 * The usable properties: null, boolean, finite number and string values (an Avro union's one
 * branch unwrapped). A property of any other shape (nested data, NaN) is left out rather than
 * refused: a property no rule reads must never send a usage event to the dead letters, and a rule
 * that reads one left out finds it missing and says so. Every name and string value must be
 * well-formed Unicode, though: a lone surrogate is refused anywhere in a usage event, since no
 * store or wire format downstream (PostgreSQL, Avro, Kafka headers) can hold it.
 */
function propertiesOf(value: unknown): Record<string, PropertyValue> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidUsageEventError('properties must be an object of null, boolean, number or string values');
  }
  const properties: Record<string, PropertyValue> = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!isWellFormedText(key)) throw new InvalidUsageEventError('a property name is not well-formed Unicode (it holds a lone surrogate)');
    // Avro unions decode as { long: 5 } wrappers in some clients; unwrap the one branch.
    const branches = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? Object.keys(raw) : [];
    const item =
      branches.length === 1 && AVRO_BRANCHES.has(branches[0]!) ? Object.values(raw as Record<string, unknown>)[0] : raw;
    let usable: PropertyValue | undefined;
    if (item === null || typeof item === 'boolean') usable = item;
    else if (typeof item === 'string') {
      if (!isWellFormedText(item)) throw new InvalidUsageEventError(`property ${key} is not well-formed Unicode (it holds a lone surrogate)`);
      usable = item;
    } else if (typeof item === 'number') usable = Number.isFinite(item) ? item : undefined;
    else if (typeof item === 'bigint') usable = item.toString();
    if (usable === undefined) continue;
    // The name __proto__ is data here, never the object's prototype.
    if (key === '__proto__') Object.defineProperty(properties, key, { value: usable, enumerable: true, writable: true, configurable: true });
    else properties[key] = usable;
  }
  return properties;
}

/**
 * Validates a decoded record (from Avro or JSON) into a UsageEvent. Throws
 * InvalidUsageEventError, which is never retriable: such a message goes to the dead letters.
 */
export function parseUsageEvent(record: unknown): UsageEvent {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new InvalidUsageEventError('a usage event must be an object');
  }
  // Before anything else reads it: every format's usage event passes here (Avro, JSON, CloudEvents' data).
  assertUsageEventDepth(record);
  const fields = record as Record<string, unknown>;
  return {
    id: text(fields, 'id'),
    customerId: text(fields, 'customerId'),
    event: text(fields, 'event'),
    timestamp: usageTimestampOf(fields.timestamp),
    properties: propertiesOf(fields.properties),
  };
}
