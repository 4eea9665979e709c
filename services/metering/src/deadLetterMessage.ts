import { createHash } from 'node:crypto';
import type { TallyError } from '@tally/domain';
import type { KafkaMessage, Message } from 'kafkajs';

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
} as const;

/**
 * The most of an original value a dead letter carries. A value near the broker's message size
 * limit plus the dead-letter headers would not fit the DLQ topic, and a dead letter that cannot
 * be written would stop its partition: such a value is cut, and the headers say so. Nothing is
 * lost: the whole original stays in the source topic at the partition and offset named here.
 */
export const MAX_DEAD_LETTER_VALUE_BYTES = 256 * 1024;

/** Long enough for any decoder or validation message; a header is not the place for a whole payload. */
const MAX_REASON_LENGTH = 1000;

/**
 * The dead letter for a message: the original key (so it lands on the customer's DLQ partition,
 * in order), value and headers, untouched, so it can be fixed and replayed into the source topic
 * as it was, plus headers that say why and where it came from.
 */
export function deadLetterMessage(
  source: { readonly topic: string; readonly partition: number; readonly message: KafkaMessage },
  error: TallyError,
  at: Date,
): Message {
  const { message } = source;
  const value = message.value;
  const cut = value !== null && value.length > MAX_DEAD_LETTER_VALUE_BYTES;
  return {
    key: message.key,
    value: cut ? value.subarray(0, MAX_DEAD_LETTER_VALUE_BYTES) : value,
    headers: {
      ...message.headers,
      ...(cut
        ? {
            [DEAD_LETTER_HEADERS.valueTruncatedFrom]: String(value.length),
            [DEAD_LETTER_HEADERS.valueSha256]: createHash('sha256').update(value).digest('hex'),
          }
        : {}),
      [DEAD_LETTER_HEADERS.reason]: error.message.slice(0, MAX_REASON_LENGTH),
      [DEAD_LETTER_HEADERS.errorCode]: error.code,
      [DEAD_LETTER_HEADERS.sourceTopic]: source.topic,
      [DEAD_LETTER_HEADERS.sourcePartition]: String(source.partition),
      [DEAD_LETTER_HEADERS.sourceOffset]: message.offset,
      [DEAD_LETTER_HEADERS.at]: at.toISOString(),
    },
  };
}
