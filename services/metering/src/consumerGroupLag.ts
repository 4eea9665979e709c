import { abandonable, createPeriodicWorker, createWorker, type Worker } from '@tally/runtime';
import { createKafka, kafkaConnectionConfig, type KafkaConnection } from '@tally/kafka';
import { logLevel, type Admin } from 'kafkajs';
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
  return groupLagFromOffsets(committed[0]?.partitions ?? [], ends, group.fromBeginning);
}

/** Offsets as kafkajs's admin answers them: int64 decimal strings, "-1" for none committed. */
export function groupLagFromOffsets(
  committed: readonly { readonly partition: number; readonly offset: string }[],
  ends: readonly { readonly partition: number; readonly low: string; readonly high: string }[],
  fromBeginning: boolean,
): PartitionGroupLag[] {
  // A partition's offsets stay far below 2^53.
  const at = new Map(committed.map(({ partition, offset }) => [partition, Number(offset)]));
  return ends
    .map(({ partition, low, high }) => {
      const start = Number(low);
      const end = Number(high);
      const offset = at.get(partition) ?? -1;
      // Never committed (-1), or committed before what retention has deleted: the consumer starts
      // at its default offset, as kafkajs resets an out-of-range one (the log's start or its end).
      const from = offset >= start ? offset : fromBeginning ? start : end;
      return { partition, lag: Math.max(0, end - from) };
    })
    .sort((a, b) => a.partition - b.partition);
}

/**
 * A reading the broker has not answered by then has failed; the next comes at the interval. kafkajs
 * waits for requests in flight before it disconnects, so this also bounds the reader's stop.
 */
const READING_TIMEOUT_MS = 5000;

interface ConsumerGroupLagOptions extends GroupOnTopic {
  /** The brokers and credentials; the reader has a client of its own, with its own timeouts. */
  readonly kafka: KafkaConnection;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Each reading, every partition of the topic. Must not throw. */
  readonly report: (lags: readonly PartitionGroupLag[]) => void;
}

/** Reads the group's lag every `intervalMs` while it runs; a failed reading is logged and tried again at the next. */
export function createConsumerGroupLag(options: ConsumerGroupLagOptions): Worker {
  // No retries of its own: the next reading is the retry.
  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    requestTimeout: READING_TIMEOUT_MS,
    retry: { retries: 0 },
    logLevel: logLevel.INFO,
    logger: options.logger,
  });
  const admin = kafka.admin();
  /** The admin's connection, shared by the readings; dropped when it fails, so the next one connects again. */
  let connection: Promise<void> | undefined;
  const reader = createPeriodicWorker({
    name: 'consumer-group-lag',
    logger: options.logger,
    intervalMs: options.intervalMs,
    run: async (signal) => {
      connection ??= admin.connect().catch((error: unknown) => {
        connection = undefined;
        throw error;
      });
      // A stop does not wait for a broker that does not answer (the consumer's stop is bounded):
      // the reading only feeds a gauge, so it is abandoned.
      try {
        await abandonable(connection, signal);
        options.report(await abandonable(readConsumerGroupLag(admin, options), signal));
      } catch (error) {
        if (!signal.aborted) throw error;
      }
    },
  });
  return createWorker('consumer-group-lag', {
    start: () => reader.start(),
    async stop() {
      await reader.stop();
      // Closes whatever was connected or is connecting; a no-op on an admin never connected.
      await admin.disconnect();
    },
  });
}
