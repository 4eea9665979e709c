import { copyText } from './copyRows';

/** A decoded message, where it came from. */
export interface DecodedMessage {
  readonly partition: number;
  /** Kafka's offset, a decimal string. */
  readonly offset: string;
  readonly value: unknown;
}

/** Avro longs may decode as bigints, which JSON.stringify refuses. */
const jsonOf = (value: unknown): string => JSON.stringify(value, (_key, field: unknown) => (typeof field === 'bigint' ? field.toString() : field));

/** The events table's ids are uuids: partition and offset, each in a field of its own (offsets below 2^48). */
export function messageUuid(partition: number, offset: string): string {
  return `${partition.toString(16).padStart(8, '0')}-0000-4000-8000-${BigInt(offset).toString(16).padStart(12, '0')}`;
}

/**
 * One events-table row per message, as COPY text: its own position, an id and a (stream, revision)
 * made from its partition and offset (unique, as the table's indexes require), the decoded value
 * as JSON data.
 */
export function usageCopyRows(messages: readonly DecodedMessage[], firstPosition: number, recordedAt: string): Buffer {
  const lines = messages.map((message, index) =>
    [
      String(firstPosition + index),
      messageUuid(message.partition, message.offset),
      `usage-${message.partition}`,
      message.offset,
      'UsageRecorded',
      copyText(jsonOf(message.value)),
      '{}',
      recordedAt,
    ].join('\t'),
  );
  return Buffer.from(`${lines.join('\n')}\n`);
}

/**
 * The durable ceiling's write: each batch's decoded messages in COPYs of at most `chunkSize`
 * rows (`write`: one COPY, one transaction, one commit, into a table shaped and indexed like the
 * events table), as the metering consumer appends a batch in chunks of its batch size
 * (DEFAULT_CONSUMER_BATCH_SIZE): one COPY per fetched batch, some 5,000 rows each, made a
 * ceiling with a fifth of Tally's commits (before the night of 2026-12-07). Positions are taken before each
 * COPY starts, so batches of partitions consumed at once never share one.
 */
export function durableCopySink(write: (rows: Buffer) => Promise<void>, chunkSize: number): (messages: readonly DecodedMessage[]) => Promise<void> {
  let nextPosition = 1;
  return async (messages) => {
    for (let from = 0; from < messages.length; from += chunkSize) {
      const chunk = messages.slice(from, from + chunkSize);
      const first = nextPosition;
      nextPosition += chunk.length;
      await write(usageCopyRows(chunk, first, new Date().toISOString()));
    }
  };
}
