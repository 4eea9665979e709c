import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

export interface ReadTopicToEndsOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  /** Names the reader's throw-away consumer group, for whoever lists groups meanwhile. */
  readonly purpose: string;
  /** Each partition's messages in order, a batch at a time; the next batch waits for it. */
  readonly eachBatch: (partition: number, messages: readonly KafkaMessage[]) => Promise<void>;
  /** How long the read may go without a batch before it fails; default 30 s. */
  readonly idleTimeoutMs?: number;
  /** The consumer's fetch size bound (kafkajs's `maxBytes`). */
  readonly maxBytes?: number;
  /** Ends the read early (a process stopping): it rejects with the signal's reason once the batch at hand is done. */
  readonly signal?: AbortSignal;
  /**
   * Reads only these partitions, each from `from` to `to` (offsets, both included), within what
   * the partition holds then: a pick of a few messages costs the messages between them, not the
   * whole topic. Without it, every partition from its start.
   */
  readonly only?: ReadonlyMap<number, { readonly from: bigint; readonly to: bigint }>;
}

/**
 * Reads a topic from its start to the ends it has when the read starts, then returns. Messages
 * written meanwhile are not read, so a reader that writes back into the topic (or whose work
 * makes others write there) still finishes. It reads as a consumer group of its own that commits
 * nothing and is deleted afterwards: nobody's offsets move.
 */
export async function readTopicToEnds(options: ReadTopicToEndsOptions): Promise<void> {
  const { kafka, topic } = options;
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `${options.purpose}-${randomUUID()}`;
  try {
    // The first and last offsets to read of each partition that has any (high is the next offset
    // to be written), clipped to the range asked for.
    const ends = new Map<number, bigint>();
    const next = new Map<number, bigint>();
    const unread: number[] = [];
    for (const { partition, low, high } of await admin.fetchTopicOffsets(topic)) {
      const range = options.only?.get(partition);
      const first = range === undefined || range.from < BigInt(low) ? BigInt(low) : range.from;
      const last = range === undefined || range.to >= BigInt(high) ? BigInt(high) - 1n : range.to;
      if ((options.only === undefined || range !== undefined) && last >= first) {
        ends.set(partition, last);
        next.set(partition, first);
      } else {
        unread.push(partition);
      }
    }
    if (ends.size === 0) return;
    const reader = kafka.consumer({ groupId, allowAutoTopicCreation: false, ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}) });
    await reader.connect();
    try {
      await reader.subscribe({ topic, fromBeginning: true });
      let settle: (error?: Error) => void = () => undefined;
      const finished = new Promise<void>((resolve, reject) => (settle = (error) => (error ? reject(error) : resolve())));
      let failed = false;
      // Once failed (or aborted), no further batch is handed over while the reader disconnects.
      const fail = (error: Error) => {
        failed = true;
        settle(error);
      };
      let lastBatchAt = Date.now();
      // Where each partition's read has come to, from kafkajs's end of every batch: a batch that
      // holds only what a reader is never handed (a transaction's commit or abort marker, an
      // aborted transaction's records) reaches no eachBatch, and when it is a partition's last,
      // the read would otherwise wait for its end until the idle timeout.
      reader.on(reader.events.END_BATCH_PROCESS, ({ payload }) => {
        if (payload.topic !== topic || failed) return;
        lastBatchAt = Date.now();
        const end = ends.get(payload.partition);
        if (end !== undefined && BigInt(payload.lastOffset) >= end) ends.delete(payload.partition);
        if (ends.size === 0) settle();
      });
      await reader.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = ends.get(batch.partition);
          const from = next.get(batch.partition);
          if (end === undefined || from === undefined || failed) return;
          lastBatchAt = Date.now();
          // From where the read has come to: a batch fetched before a seek below took effect may
          // start earlier, or hand over again what the sought position fetches anew.
          const messages = batch.messages.filter((message) => BigInt(message.offset) >= from && BigInt(message.offset) <= end);
          try {
            if (messages.length > 0) {
              next.set(batch.partition, BigInt(messages[messages.length - 1]!.offset) + 1n);
              await options.eachBatch(batch.partition, messages);
            }
          } catch (error) {
            // Not thrown to kafkajs, which would fetch the batch again and hand it over twice.
            fail(error instanceof Error ? error : new Error(String(error)));
          }
        },
      });
      if (options.only !== undefined) {
        // Only the ranges asked for: each read partition from its first offset, the others not fetched.
        for (const [partition, offset] of next) reader.seek({ topic, partition, offset: offset.toString() });
        if (unread.length > 0) reader.pause([{ topic, partitions: unread }]);
      }
      const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
      const abort = () => fail(options.signal?.reason instanceof Error ? options.signal.reason : new Error('the read was aborted'));
      if (options.signal?.aborted) abort();
      options.signal?.addEventListener('abort', abort, { once: true });
      const watchdog = setInterval(() => {
        if (Date.now() - lastBatchAt > idleTimeoutMs) {
          fail(new Error(`nothing read from ${topic} for ${idleTimeoutMs} ms; partitions not read to their end: ${[...ends.keys()].join(', ')}`));
        }
      }, Math.min(1000, idleTimeoutMs));
      try {
        await finished;
      } finally {
        clearInterval(watchdog);
        options.signal?.removeEventListener('abort', abort);
      }
    } finally {
      await reader.disconnect();
    }
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}
