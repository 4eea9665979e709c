import { undecodableBatchOf, type UndecodableBatch } from '@tally/kafka';
import type { Batch, Consumer, EachBatchHandler, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';

/** A partition the consumer stopped at because a record batch there could not be decoded. */
export interface StalledPartition {
  readonly topic: string;
  readonly partition: number;
  /** First offset of the undecodable batch: the partition's committed offset, where metering waits. */
  readonly offset: string;
  /** Last offset the batch covers; `tally skip-batch` commits the offset after it. */
  readonly lastOffset: string;
  readonly records: number;
  readonly codec: string;
  readonly reason: string;
  /** When this consumer stopped there, ISO-8601. */
  readonly since: string;
}

export interface StalledPartitions {
  /**
   * Wraps the consumer's batch handler: the messages before an undecodable batch go to the
   * handler as a batch of their own; then the stall is reported and the partition paused.
   */
  guard(handler: EachBatchHandler): EachBatchHandler;
  /** After each rebalance: forgets the stalls of partitions this member no longer owns, and resumes the owned partitions that have none. */
  watch(consumer: Consumer): void;
  list(): readonly StalledPartition[];
}

const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * Stalls are never silent: a batch that cannot be decoded (a codec this process lacks, corrupt
 * bytes) stops its partition at the batch's first offset (nothing after it is metered out of
 * order, and nothing in it is skipped without an operator's decision), with an error log naming
 * topic, partition and offsets, a line on /health and a metric, until `tally skip-batch` moves the
 * partition past it. The partition's other batches and every other partition go on.
 */
export function createStalledPartitions(logger: Logger, clock: () => Date): StalledPartitions {
  const stalled = new Map<string, StalledPartition>();

  function stall(topic: string, partition: number, message: KafkaMessage): StalledPartition {
    const batch = undecodableBatchOf(message) as UndecodableBatch;
    const existing = stalled.get(keyOf(topic, partition));
    if (existing?.offset === batch.baseOffset) return existing;
    const entry: StalledPartition = {
      topic,
      partition,
      offset: batch.baseOffset,
      lastOffset: batch.lastOffset,
      records: batch.records,
      codec: batch.codec,
      reason: batch.reason,
      since: clock().toISOString(),
    };
    stalled.set(keyOf(topic, partition), entry);
    logger.error(
      { ...entry, rawBytes: batch.raw.length },
      'a record batch cannot be decoded: metering of this partition waits there; see README "A partition stalled on an undecodable batch"',
    );
    return entry;
  }

  return {
    guard(handler) {
      return async (payload) => {
        const { batch } = payload;
        const undecodable = batch.messages.findIndex((message) => undecodableBatchOf(message) !== undefined);
        if (undecodable === -1) return handler(payload);
        if (undecodable > 0) {
          // The same batch (its methods, high watermark) with the messages before the stand-in only.
          const before = Object.create(batch, { messages: { value: batch.messages.slice(0, undecodable) } }) as Batch;
          await handler({ ...payload, batch: before });
        }
        // Not when stopping (what came before may be uncommitted) or when the partition was sought.
        if (!payload.isRunning() || payload.isStale()) return;
        stall(batch.topic, batch.partition, batch.messages[undecodable]!);
        payload.pause();
      };
    },

    watch(consumer) {
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        const assigned = Object.entries(payload.memberAssignment);
        const owned = new Set(assigned.flatMap(([topic, partitions]) => partitions.map((partition) => keyOf(topic, partition))));
        for (const key of [...stalled.keys()]) if (!owned.has(key)) stalled.delete(key);
        // kafkajs keeps a partition's pause across rebalances: one stalled here, given to another
        // member and back, would stay paused with its stall forgotten, a silent stall. Every
        // partition owned without a stall is resumed; an undecodable batch still there stops and
        // reports it again at the first fetch.
        const resume = assigned
          .map(([topic, partitions]) => ({ topic, partitions: partitions.filter((partition) => !stalled.has(keyOf(topic, partition))) }))
          .filter(({ partitions }) => partitions.length > 0);
        if (resume.length > 0) consumer.resume(resume);
      });
    },

    list: () => [...stalled.values()],
  };
}
