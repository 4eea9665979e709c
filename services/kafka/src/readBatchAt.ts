import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { withDeadline } from '@tally/runtime';

export interface ReadBatchAtOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly partition: number;
  /** Where to start: the first batch handed over holds this offset or the next one there is. */
  readonly offset: string;
  /** Names the reader's throw-away consumer group, for whoever lists groups meanwhile. */
  readonly purpose: string;
  /** How long to wait for the batch; default 30 s. */
  readonly timeoutMs?: number;
}

/**
 * The messages of the first batch kafkajs hands over from `offset` on, in one partition, read by a
 * consumer group of its own that commits nothing and is deleted afterwards: nobody's offsets move.
 * The caller checks that the offset exists (offsetPlace: an offset past the partition's end waits
 * for a write until the timeout) and picks what it wants from the batch: kafkajs drops the messages before
 * `offset` of a fetched batch, but an undecodable batch is handed over whole as one stand-in.
 */
export async function readBatchAt(options: ReadBatchAtOptions): Promise<readonly KafkaMessage[]> {
  const { kafka, topic, partition, offset } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const groupId = `${options.purpose}-${randomUUID()}`;
  const reader = kafka.consumer({ groupId, allowAutoTopicCreation: false });
  try {
    await reader.connect();
    try {
      await reader.subscribe({ topic, fromBeginning: false });
      let settle: (messages: readonly KafkaMessage[]) => void = () => undefined;
      const found = new Promise<readonly KafkaMessage[]>((resolve) => (settle = resolve));
      await reader.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          // Only the sought partition, from the sought offset on (the seek makes earlier fetches stale).
          if (batch.partition !== partition || batch.messages.length === 0) return;
          settle(batch.messages);
        },
      });
      reader.seek({ topic, partition, offset });
      return await withDeadline(found, timeoutMs, () => new Error(`no batch of ${topic}/${partition} at offset ${offset} within ${timeoutMs} ms`));
    } finally {
      await reader.disconnect();
    }
  } finally {
    const admin = kafka.admin();
    await admin
      .connect()
      .then(() => admin.deleteGroups([groupId]))
      .catch(() => undefined)
      .finally(() => admin.disconnect());
  }
}
