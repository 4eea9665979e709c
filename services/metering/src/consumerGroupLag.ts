import { createPeriodicWorker, createWorker, type Worker } from '@tally/runtime';
import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from 'pino';

/** Usage events on one partition that the consumer group has not committed. */
export interface PartitionGroupLag {
  readonly partition: number;
  readonly lag: number;
}

interface GroupOnTopic {
  readonly groupId: string;
  readonly topic: string;
  /** Where the group starts on a partition it never committed: the log's start (true) or its end. */
  readonly fromBeginning: boolean;
}

/**
 * The group's lag as the broker holds it: each partition's end less the group's committed offset.
 * Unlike the lag a consumer sees at each batch, it grows while the consumers are stuck, gone or
 * never got a batch, which is when it matters.
 */
export async function readConsumerGroupLag(admin: Admin, group: GroupOnTopic): Promise<PartitionGroupLag[]> {
  const [committed, ends] = await Promise.all([
    admin.fetchOffsets({ groupId: group.groupId, topics: [group.topic] }),
    admin.fetchTopicOffsets(group.topic),
  ]);
  // Offsets are int64 strings; a partition's stay far below 2^53.
  const at = new Map((committed[0]?.partitions ?? []).map(({ partition, offset }) => [partition, Number(offset)]));
  return ends
    .map(({ partition, high, low }) => {
      const end = Number(high);
      const offset = at.get(partition) ?? -1;
      const from = offset >= 0 ? offset : group.fromBeginning ? Number(low) : end;
      return { partition, lag: Math.max(0, end - from) };
    })
    .sort((a, b) => a.partition - b.partition);
}

interface ConsumerGroupLagOptions extends GroupOnTopic {
  /** Built by the one Kafka client factory (createKafka). */
  readonly kafka: Kafka;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Each reading, every partition of the topic. Must not throw. */
  readonly report: (lags: readonly PartitionGroupLag[]) => void;
}

/** Reads the group's lag every `intervalMs` while it runs; a failed reading is logged and tried again at the next. */
export function createConsumerGroupLag(options: ConsumerGroupLagOptions): Worker {
  const admin = options.kafka.admin();
  let connected = false;
  const reader = createPeriodicWorker({
    name: 'consumer-group-lag',
    logger: options.logger,
    intervalMs: options.intervalMs,
    run: async () => {
      if (!connected) {
        await admin.connect();
        connected = true;
      }
      options.report(await readConsumerGroupLag(admin, options));
    },
  });
  return createWorker('consumer-group-lag', {
    start: () => reader.start(),
    async stop() {
      await reader.stop();
      if (connected) await admin.disconnect();
    },
  });
}
