import { TallyError } from '@tally/domain';
import { createKafka, kafkaConnectionConfig, offsetPlace, readBatchAt, type KafkaConnection } from '@tally/kafka';
import { logLevel, type IHeaders } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterHeader } from './deadLetterMessage';
import { deadLetterRecordOf, type DeadLetterRecord } from './deadLetterRecord';
import { DeadLettersUnavailableError } from './meteringErrors';
import type { UsageEventDecoder } from './usageEventDecoder';

/** No letter at that partition and offset of the dead-letter topic: never written, or past its retention. */
export class DeadLetterNotFoundError extends TallyError {
  readonly code = 'dead_letter_not_found';
  readonly retriable = false;
}

/** One header of a letter: as text when it is UTF-8, else base64. Kafka allows a name more than once. */
export interface DeadLetterHeader {
  readonly name: string;
  /** null for a header without a value (Kafka's length -1), which differs from an empty one. */
  readonly value: string | null;
  readonly encoding: 'utf8' | 'base64';
}

/** A letter's value, whole as the topic holds it, and the record in it where one could be read. */
export interface DeadLetterValue {
  readonly bytes: number;
  readonly base64: string;
  /** `avro` (Confluent-framed, decoded with its writer's schema) or `json`; null when neither could be read. */
  readonly format: 'avro' | 'json' | null;
  readonly schemaId: number | null;
  /** The record as the producer wrote it, before any validation (plain JSON: longs beyond 2^53 as strings). */
  readonly record: unknown;
  /** Why no record could be read now (the consumer's words, or that the registry did not answer); null when one was. */
  readonly unreadable: string | null;
}

/** The whole of a dead letter, for an operator finding out what a producer sent. */
export interface DeadLetter extends DeadLetterRecord {
  /** When Kafka stored the letter (ISO-8601). */
  readonly storedAt: string;
  /** Every header, the dead-letter ones (`tally.dlq.*`, `tally.source.*`) and the producer's, in order. */
  readonly headers: readonly DeadLetterHeader[];
  readonly value: DeadLetterValue | null;
}

export interface DeadLetterReader {
  /** The letter at that place of the dead-letter topic; DeadLetterNotFoundError when there is none, DeadLettersUnavailableError when Kafka does not answer. */
  read(partition: number, offset: string): Promise<DeadLetter>;
}

export interface DeadLetterReaderOptions {
  readonly kafka: KafkaConnection;
  readonly dlqTopic: string;
  /** Reads the record in a letter's value, with the consumer's own registry client and checks. */
  readonly decoder: Pick<UsageEventDecoder, 'readRecord'>;
  /** How long a read may wait for Kafka; default 15 s. */
  readonly timeoutMs?: number;
}

function headersOf(headers: IHeaders | undefined): DeadLetterHeader[] {
  const list: DeadLetterHeader[] = [];
  for (const [name, raw] of Object.entries(headers ?? {})) {
    // kafkajs reads a header without a value as null, which its types leave out: shown as none,
    // as the consumer keeps it (deadLetterMessage), never as the text "null" a producer could send.
    for (const value of (Array.isArray(raw) ? raw : [raw]) as (Buffer | string | null | undefined)[]) {
      if (value === undefined) continue;
      if (value === null) {
        list.push({ name, value: null, encoding: 'utf8' });
        continue;
      }
      const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
      // Text only when it round-trips: a binary header is shown whole, not with U+FFFD in it.
      const text = bytes.toString('utf8');
      list.push(Buffer.from(text, 'utf8').equals(bytes) ? { name, value: text, encoding: 'utf8' } : { name, value: bytes.toString('base64'), encoding: 'base64' });
    }
  }
  return list;
}

/** A broker's timestamp is milliseconds as text; a client's own can be anything, and then reads as the epoch. */
function storedAtOf(timestamp: string): string {
  const at = new Date(Number(timestamp));
  return Number.isNaN(at.getTime()) ? new Date(0).toISOString() : at.toISOString();
}

/** Plain JSON of a decoded record: avsc gives bigints for longs it cannot hold exactly, and Buffers for bytes. */
function plain(record: unknown): unknown {
  return JSON.parse(JSON.stringify(record, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))) as unknown;
}

/**
 * Why a record that decoded is not shown: JSON.stringify recurses, and a letter dead-lettered for
 * nesting too deep (a usage event may nest 64 levels) can hold thousands, which overflow it.
 */
const TOO_DEEP = 'the record nests too deeply to show as JSON (a usage event nests at most 64 levels); its bytes are here whole, in base64';

/** Why a raw batch is not read as a record: its first bytes, the batch's base offset, would pass for Avro's framing. */
const RAW_BATCH = 'a raw record batch that tally skip-batch set aside: the batch header and its records as the broker stored them, which no consumer could decompress';

async function valueOf(value: Buffer, headers: IHeaders | undefined, decoder: DeadLetterReaderOptions['decoder']): Promise<DeadLetterValue> {
  const whole = { bytes: value.length, base64: value.toString('base64') };
  if (deadLetterHeader(headers, DEAD_LETTER_HEADERS.sourceLastOffset) !== null) return { ...whole, format: null, schemaId: null, record: null, unreadable: RAW_BATCH };
  try {
    const { format, schemaId, record } = await decoder.readRecord(value);
    try {
      return { ...whole, format, schemaId, record: plain(record), unreadable: null };
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return { ...whole, format, schemaId, record: null, unreadable: TOO_DEEP };
    }
  } catch (error) {
    // A registry that does not answer still leaves the letter worth showing: its message says so.
    return { ...whole, format: null, schemaId: null, record: null, unreadable: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * Reads one dead letter whole from the dead-letter topic, by where it sits there (the list's
 * `partition` and `offset`): the log the API keeps holds a preview only. Each read is a consumer
 * group of its own that commits nothing (`readBatchAt`), so it moves nobody's offsets, and costs a
 * group join: for an operator's one letter at a time, not for listing.
 */
export function createDeadLetterReader(options: DeadLetterReaderOptions): DeadLetterReader {
  const timeoutMs = options.timeoutMs ?? 15_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new Error('timeoutMs must be a positive integer');
  // Few retries: an operator waiting on a page is better told within seconds that Kafka does not
  // answer (503, and the page says so) than held for kafkajs's default half a minute.
  const kafka = createKafka({ ...kafkaConnectionConfig(options.kafka), logLevel: logLevel.NOTHING, retry: { retries: 2 } });
  const topic = options.dlqTopic;
  const notFound = (partition: number, offset: string, why: string) => new DeadLetterNotFoundError(`no dead letter at partition ${partition}, offset ${offset} of ${topic}: ${why}`);

  async function watermarks() {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await admin.fetchTopicOffsets(topic);
    } finally {
      await admin.disconnect();
    }
  }

  return {
    async read(partition, offset) {
      try {
        // Checked first (offsetPlace): a read past the end would wait for a letter that may never come.
        const place = offsetPlace(await watermarks(), partition, offset);
        if (place.kind === 'no_partition') throw notFound(partition, offset, 'the topic has no such partition');
        if (place.kind === 'outside') throw notFound(partition, offset, place.why);
        const batch = await readBatchAt({ kafka, topic, partition, offset, purpose: 'tally-dead-letter-read', timeoutMs });
        // kafkajs hands over the batch from the offset on; another first offset means nothing is
        // stored there (a transaction's marker, or a record compacted away).
        const message = batch.find((candidate) => candidate.offset === offset);
        if (message === undefined) throw notFound(partition, offset, 'the offset holds no message');
        return {
          ...deadLetterRecordOf(partition, message),
          storedAt: storedAtOf(message.timestamp),
          headers: headersOf(message.headers),
          value: message.value === null ? null : await valueOf(message.value, message.headers, options.decoder),
        };
      } catch (error) {
        if (error instanceof TallyError) throw error;
        // Kafka's words name the brokers' addresses: kept as the cause, for the log, not the client.
        throw new DeadLettersUnavailableError('the dead-letter topic could not be read; retry shortly', { cause: error });
      }
    },
  };
}
