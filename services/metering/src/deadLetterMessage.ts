import { createHash } from 'node:crypto';
import type { TallyError } from '@tally/domain';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';

/** Headers a dead letter carries besides the original message's own. */
export const DEAD_LETTER_HEADERS = {
  /** Human-readable: why the message could not be metered. */
  reason: 'tally.dlq.reason',
  /** Machine-readable: the error code, e.g. `invalid_usage_event`, `unknown_schema_id`. */
  errorCode: 'tally.dlq.error-code',
  sourceTopic: 'tally.source.topic',
  sourcePartition: 'tally.source.partition',
  sourceOffset: 'tally.source.offset',
  /** Only on a skipped undecodable batch (`tally skip-batch`): the last offset it covered. */
  sourceLastOffset: 'tally.source.last-offset',
  /** When the consumer dead-lettered it, ISO-8601. */
  at: 'tally.dlq.at',
  /** Present when the value was cut: its original length in bytes. */
  valueTruncatedFrom: 'tally.dlq.value-truncated-from',
  /** SHA-256 (hex) of the whole original value, when it was cut. */
  valueSha256: 'tally.dlq.value-sha256',
  /** Present when the key was cut: its original length in bytes. */
  keyTruncatedFrom: 'tally.dlq.key-truncated-from',
  /** SHA-256 (hex) of the whole original key, when it was cut. */
  keySha256: 'tally.dlq.key-sha256',
  /** Present when original headers were left out: their original total size in bytes (names and values). */
  headersTruncatedFrom: 'tally.dlq.headers-truncated-from',
  /** How many original header values were left out. */
  headersDropped: 'tally.dlq.headers-dropped',
  /**
   * SHA-256 (hex) of every original header, when some were left out: over each name and value in
   * order, each as a 4-byte big-endian length then its bytes (a header without a value: length -1, no bytes).
   */
  headersSha256: 'tally.dlq.headers-sha256',
  /** The code of the failure behind an `unmeterable_usage` dead letter (a SQLSTATE such as 22P02). */
  causeCode: 'tally.dlq.cause-code',
  /**
   * The customer and usage event id the value names, when they could be read from it (it decoded,
   * or failed only its validation): what lets a lookup of that usage event say it was dead-lettered.
   * Absent when the bytes name neither.
   */
  customerId: 'tally.dlq.customer-id',
  usageEventId: 'tally.dlq.usage-event-id',
} as const;

/** The usage event a dead letter's value names, as far as it could be read. */
export interface DeadLetterUsage {
  readonly customerId: string;
  readonly usageEventId: string;
}

/** A header's first value as text, or null: what a dead letter's reader takes from its headers. */
export function deadLetterHeader(headers: IHeaders | undefined, name: string): string | null {
  const raw = headers?.[name];
  const value = (Array.isArray(raw) ? raw[0] : raw) as Buffer | string | null | undefined;
  if (value === undefined || value === null) return null;
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/**
 * The most of an original value a dead letter carries. A value near the broker's message size
 * limit plus the dead-letter headers would not fit the DLQ topic, and a dead letter that cannot
 * be written would stop its partition: such a value is cut, and the headers say so. Nothing is
 * lost: the whole original stays in the source topic at the partition and offset named here.
 */
export const MAX_DEAD_LETTER_VALUE_BYTES = 256 * 1024;

/** The most of an original key a dead letter carries (a customer id is at most 256 characters). */
export const MAX_DEAD_LETTER_KEY_BYTES = 16 * 1024;

/**
 * The most bytes of original headers (names and values) a dead letter carries. With the value and
 * key limits and Tally's own headers, a dead letter stays well under Kafka's default 1 MB limit
 * (message.max.bytes), whatever the original carried.
 */
export const MAX_DEAD_LETTER_HEADER_BYTES = 64 * 1024;

/** Long enough for any decoder or validation message; a header is not the place for a whole payload. */
const MAX_REASON_LENGTH = 1000;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A 4-byte big-endian length, then the bytes; no value (null) is length -1 and no bytes, as Kafka encodes it. */
function lengthPrefixed(data: Buffer | null): Buffer[] {
  const length = Buffer.alloc(4);
  length.writeInt32BE(data === null ? -1 : data.length);
  return data === null ? [length] : [length, data];
}

/**
 * The original headers that fit MAX_DEAD_LETTER_HEADER_BYTES, in order (a value too large is
 * left out, the next ones still kept), and, when some were left out, headers that say so.
 */
function keptHeaders(original: IHeaders | undefined): IHeaders {
  if (original === undefined) return {};
  // kafkajs reads a header without a value (length -1) as null, which its types leave out: it is
  // kept as null, or the letter would carry the text "null" instead.
  const entries: [string, Buffer | null][] = [];
  for (const [name, raw] of Object.entries(original)) {
    if (raw === undefined) continue;
    for (const item of (Array.isArray(raw) ? raw : [raw]) as (Buffer | string | null)[]) {
      entries.push([name, item === null || Buffer.isBuffer(item) ? item : Buffer.from(String(item), 'utf8')]);
    }
  }
  const total = entries.reduce((sum, [name, value]) => sum + Buffer.byteLength(name, 'utf8') + (value?.length ?? 0), 0);
  if (total <= MAX_DEAD_LETTER_HEADER_BYTES) return original;
  // A Map: header names are the producer's, and a plain object would find "constructor" or
  // "__proto__" already there (inherited) and fail to dead-letter the message.
  const kept = new Map<string, (Buffer | null)[]>();
  let used = 0;
  let dropped = 0;
  for (const [name, value] of entries) {
    const size = Buffer.byteLength(name, 'utf8') + (value?.length ?? 0);
    if (used + size > MAX_DEAD_LETTER_HEADER_BYTES) {
      dropped += 1;
      continue;
    }
    used += size;
    const values = kept.get(name);
    if (values === undefined) kept.set(name, [value]);
    else values.push(value);
  }
  const digest = sha256(Buffer.concat(entries.flatMap(([name, value]) => [...lengthPrefixed(Buffer.from(name, 'utf8')), ...lengthPrefixed(value)])));
  return {
    // kafkajs writes a null header value as no value (length -1), as it read it.
    // fromEntries defines own properties, so a header named "__proto__" stays a header.
    ...(Object.fromEntries([...kept].map(([name, values]) => [name, values.length === 1 ? values[0] : values])) as IHeaders),
    [DEAD_LETTER_HEADERS.headersTruncatedFrom]: String(total),
    [DEAD_LETTER_HEADERS.headersDropped]: String(dropped),
    [DEAD_LETTER_HEADERS.headersSha256]: digest,
  };
}

/**
 * The dead letter for a message: the original key (so it lands on the customer's DLQ partition,
 * in order), value and headers, untouched, so it can be fixed and replayed into the source topic
 * as it was, plus headers that say why and where it came from. A dead letter always fits the DLQ
 * topic, since one that cannot be written would stop its partition: a value, key or header set
 * too large is cut, with the original length and SHA-256 of what was cut in headers; the whole
 * original stays in the source topic at the partition and offset named here.
 */
export function deadLetterMessage(
  source: { readonly topic: string; readonly partition: number; readonly message: KafkaMessage },
  error: TallyError,
  at: Date,
  usage?: DeadLetterUsage | null,
): Message {
  const { message } = source;
  const { value, key } = message;
  const valueCut = value !== null && value.length > MAX_DEAD_LETTER_VALUE_BYTES;
  const keyCut = key !== null && key !== undefined && key.length > MAX_DEAD_LETTER_KEY_BYTES;
  const causeCode = (error as { causeCode?: unknown }).causeCode;
  return {
    key: keyCut ? key.subarray(0, MAX_DEAD_LETTER_KEY_BYTES) : key,
    value: valueCut ? value.subarray(0, MAX_DEAD_LETTER_VALUE_BYTES) : value,
    headers: {
      ...keptHeaders(message.headers),
      ...(valueCut ? { [DEAD_LETTER_HEADERS.valueTruncatedFrom]: String(value.length), [DEAD_LETTER_HEADERS.valueSha256]: sha256(value) } : {}),
      ...(keyCut ? { [DEAD_LETTER_HEADERS.keyTruncatedFrom]: String(key.length), [DEAD_LETTER_HEADERS.keySha256]: sha256(key) } : {}),
      ...(typeof causeCode === 'string' ? { [DEAD_LETTER_HEADERS.causeCode]: causeCode.slice(0, 64) } : {}),
      // Both are at most 256 characters (usageIdentityOf): they never crowd the letter's limit.
      ...(usage !== undefined && usage !== null ? { [DEAD_LETTER_HEADERS.customerId]: usage.customerId, [DEAD_LETTER_HEADERS.usageEventId]: usage.usageEventId } : {}),
      [DEAD_LETTER_HEADERS.reason]: error.message.slice(0, MAX_REASON_LENGTH),
      [DEAD_LETTER_HEADERS.errorCode]: error.code,
      [DEAD_LETTER_HEADERS.sourceTopic]: source.topic,
      [DEAD_LETTER_HEADERS.sourcePartition]: String(source.partition),
      [DEAD_LETTER_HEADERS.sourceOffset]: message.offset,
      [DEAD_LETTER_HEADERS.at]: at.toISOString(),
    },
  };
}
