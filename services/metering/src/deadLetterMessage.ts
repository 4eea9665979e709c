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
  /** When the consumer dead-lettered it, ISO-8601. */
  at: 'tally.dlq.at',
} as const;

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
  return {
    key: message.key,
    value: message.value,
    headers: {
      ...message.headers,
      [DEAD_LETTER_HEADERS.reason]: error.message.slice(0, MAX_REASON_LENGTH),
      [DEAD_LETTER_HEADERS.errorCode]: error.code,
      [DEAD_LETTER_HEADERS.sourceTopic]: source.topic,
      [DEAD_LETTER_HEADERS.sourcePartition]: String(source.partition),
      [DEAD_LETTER_HEADERS.sourceOffset]: message.offset,
      [DEAD_LETTER_HEADERS.at]: at.toISOString(),
    },
  };
}
