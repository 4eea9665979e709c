import { undecodableBatchOf, type UndecodableBatch } from '@tally/kafka';
import type { KafkaMessage } from 'kafkajs';
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
  /** Index of the first message that stands in for an undecodable batch, or -1. */
  firstUndecodable(messages: readonly KafkaMessage[]): number;
  /** Records and reports the stall at `message` (a stand-in); the caller pauses the partition. */
  stall(topic: string, partition: number, message: KafkaMessage): StalledPartition;
  /** Forgets the stalls of partitions no longer assigned to this member (after a rebalance). */
  retain(assigned: ReadonlyArray<{ readonly topic: string; readonly partition: number }>): void;
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
  return {
    firstUndecodable(messages) {
      return messages.findIndex((message) => undecodableBatchOf(message) !== undefined);
    },

    stall(topic, partition, message) {
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
    },

    retain(assigned) {
      const keep = new Set(assigned.map(({ topic, partition }) => keyOf(topic, partition)));
      for (const key of [...stalled.keys()]) if (!keep.has(key)) stalled.delete(key);
    },

    list: () => [...stalled.values()],
  };
}
