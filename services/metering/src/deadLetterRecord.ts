import type { KafkaMessage } from 'kafkajs';
import { isUsageTextLength } from '@tally/domain';
import { DEAD_LETTER_HEADERS, deadLetterHeader } from './deadLetterMessage';

/**
 * A dead letter as an operator reads it: why the usage could not be metered and where it came
 * from, without the payload itself (a preview of its start only). Plain JSON.
 */
export interface DeadLetterRecord {
  /** Where the dead letter sits on the dead-letter topic: its identity (a redelivery is the same record). */
  readonly partition: number;
  readonly offset: string;
  /** When the consumer dead-lettered it (ISO-8601), else when Kafka stored it. */
  readonly deadLetteredAt: string;
  readonly errorCode: string | null;
  readonly reason: string | null;
  /** The code of the failure behind an `unmeterable_usage` dead letter (e.g. a SQLSTATE). */
  readonly causeCode: string | null;
  readonly sourceTopic: string | null;
  readonly sourcePartition: number | null;
  readonly sourceOffset: string | null;
  /** The message key, which producers set to the customer id; cut to 256 characters. */
  readonly key: string | null;
  /** The start of the value as text (invalid UTF-8 replaced), for telling a broken producer's output at a glance. */
  readonly valuePreview: string | null;
  /** The customer the value names, when it could be read from it (`tally.dlq.customer-id`). */
  readonly customerId: string | null;
  /** The usage event id the value names, when it could be read from it (`tally.dlq.usage-event-id`). */
  readonly usageEventId: string | null;
}

const MAX_KEY_CHARS = 256;
const MAX_PREVIEW_BYTES = 300;
const MAX_REASON_CHARS = 1000;

/** Control characters would garble a table; they are shown as U+FFFD like invalid UTF-8. */
function printable(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return text.slice(0, max).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\ufffd');
}

function integerOrNull(text: string | null): number | null {
  return text !== null && /^[0-9]{1,9}$/.test(text) ? Number(text) : null;
}

function idOrNull(text: string | null): string | null {
  return text !== null && isUsageTextLength(text) ? text : null;
}

/** Reads a dead letter's headers (deadLetterMessage.ts) into a record; never throws, whatever the message holds. */
export function deadLetterRecordOf(partition: number, message: Pick<KafkaMessage, 'offset' | 'timestamp' | 'key' | 'value' | 'headers'>): DeadLetterRecord {
  const at = deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.at);
  const storedAt = new Date(Number(message.timestamp));
  const sourceOffset = deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.sourceOffset);
  const reason = deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.reason);
  return {
    partition,
    offset: message.offset,
    deadLetteredAt: at !== null && !Number.isNaN(Date.parse(at)) ? new Date(at).toISOString() : Number.isNaN(storedAt.getTime()) ? new Date(0).toISOString() : storedAt.toISOString(),
    errorCode: deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.errorCode),
    reason: reason === null ? null : printable(reason, MAX_REASON_CHARS),
    causeCode: deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.causeCode),
    sourceTopic: deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.sourceTopic),
    sourcePartition: integerOrNull(deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.sourcePartition)),
    sourceOffset: sourceOffset !== null && /^[0-9]{1,19}$/.test(sourceOffset) ? sourceOffset : null,
    key: message.key === null ? null : printable(message.key.toString('utf8'), MAX_KEY_CHARS),
    valuePreview: message.value === null ? null : printable(message.value.subarray(0, MAX_PREVIEW_BYTES).toString('utf8'), MAX_PREVIEW_BYTES),
    // Exactly as written (ids are matched by equality), but never longer than an id can be.
    customerId: idOrNull(deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.customerId)),
    usageEventId: idOrNull(deadLetterHeader(message.headers, DEAD_LETTER_HEADERS.usageEventId)),
  };
}
