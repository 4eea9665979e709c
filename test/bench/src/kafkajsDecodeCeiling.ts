import {
  DEFAULT_CONSUMER_BATCH_SIZE,
  DEFAULT_MAX_FETCH_BYTES,
  DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
  DEFAULT_SESSION_TIMEOUT_MS,
  partitionsAtOnce,
  usageConsumerKafkaSettings,
} from '@tally/metering';
import { createTestKafka, createTestRegistry } from '@tally/test-support';
import type { Admin, ConsumerConfig } from 'kafkajs';
import type { DecodedMessage } from './durableCopySink';
import { startCpuWindow } from './processCpuSeconds';
import { USAGE_PARTITIONS } from './usageTopic';
import { waitForGroupAtEnd } from './waitForGroupAtEnd';

export interface ConsumeRate {
  readonly messages: number;
  readonly seconds: number;
  readonly perSecond: number;
  /** Offset polls that failed meanwhile (see GroupAtEnd): non-zero means the figure includes an outage. */
  readonly failedPolls: number;
  /** The consuming process's user + system CPU ms per 1,000 messages (for the ceilings, the bench process, which consumes in-process). */
  readonly cpuMsPerThousand?: number;
  /** PostgreSQL's (all its processes') user + system CPU ms per 1,000 messages over the same time. */
  readonly postgresCpuMsPerThousand?: number;
}

/**
 * What the ceilings take from the metering consumer's defaults (@tally/metering, as
 * createUsageConsumer builds its kafkajs consumer): the same session and heartbeat, the same fetch
 * bounds (1 MiB a fetch, 256 KiB a partition), the same partitions at once (two, or the topic's
 * if fewer), and the chunk the durable ceiling COPYs and commits at a time (the consumer's batch
 * size). Before the night of 2026-12-07 the ceilings ran three partitions at once with kafkajs's default fetch
 * sizes (10 MiB, 1 MiB a partition) and one COPY per fetched batch: a ceiling Tally could not use.
 */
export function ceilingConsumerSettings(topicPartitions: number): {
  readonly consumer: Omit<ConsumerConfig, 'groupId'>;
  readonly partitionsConsumedConcurrently: number;
  readonly chunkSize: number;
} {
  return {
    consumer: usageConsumerKafkaSettings({
      sessionTimeoutMs: DEFAULT_SESSION_TIMEOUT_MS,
      maxFetchBytes: DEFAULT_MAX_FETCH_BYTES,
      maxFetchBytesPerPartition: DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
    }),
    partitionsConsumedConcurrently: partitionsAtOnce(undefined, topicPartitions),
    chunkSize: DEFAULT_CONSUMER_BATCH_SIZE,
  };
}

/**
 * Ceilings (a) and (c) of the metering throughput: a kafkajs consumer with the metering consumer's
 * own settings (ceilingConsumerSettings: session timeout, heartbeat, fetch sizes, manual commits,
 * the partitions it takes at once) that
 * decodes every message through the registry client and, for (a), throws it away, or, for (c),
 * hands each batch's decoded messages to `sink` (a COPY into an indexed events-shaped table) and
 * only then commits the batch's offsets, as a durable consumer must. Timed like Tally: from the
 * moment the group is joined and fetching starts to the poll that sees every partition committed
 * to its end.
 */
export async function measureKafkajsDecodeCeiling(
  admin: Admin,
  topic: string,
  groupId: string,
  messages: number,
  sink?: (decoded: readonly DecodedMessage[]) => Promise<void>,
): Promise<ConsumeRate> {
  const registry = createTestRegistry();
  const settings = ceilingConsumerSettings(USAGE_PARTITIONS);
  const consumer = createTestKafka(`${groupId}-client`).consumer({ groupId, ...settings.consumer });
  let decoded = 0;
  let failure: string | undefined;
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    failure = String(payload.error);
  });
  await consumer.connect();
  try {
    const cpu = startCpuWindow(['postgres']);
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: settings.partitionsConsumedConcurrently,
      async eachBatch({ batch, resolveOffset, commitOffsetsIfNecessary }) {
        const values: DecodedMessage[] = [];
        for (const message of batch.messages) {
          const value: unknown = await registry.decode(message.value!);
          if (sink !== undefined) values.push({ partition: batch.partition, offset: message.offset, value });
          decoded += 1;
        }
        // Durable before committed: a crash here redelivers the batch rather than losing it.
        if (sink !== undefined) await sink(values);
        const last = batch.lastOffset();
        resolveOffset(last);
        await commitOffsetsIfNecessary({
          topics: [{ topic, partitions: [{ partition: batch.partition, offset: (BigInt(last) + 1n).toString() }] }],
        });
      },
    });
    // run() resolves once the group is joined and the first fetch is under way.
    const started = Date.now();
    const { endedAt, failedPolls } = await waitForGroupAtEnd({ admin, groupId, topic, timeoutMs: 30 * 60_000, failed: () => failure });
    const seconds = (endedAt - started) / 1000;
    const cpuMsPerThousand = cpu.selfMsPerThousand(messages);
    const postgresCpuMsPerThousand = cpu.commandMsPerThousand('postgres', messages);
    if (decoded < messages) throw new Error(`the ${sink === undefined ? 'decode-only' : 'durable'} consumer decoded ${decoded} of ${messages} messages`);
    return {
      messages,
      seconds,
      perSecond: messages / seconds,
      failedPolls,
      cpuMsPerThousand,
      ...(postgresCpuMsPerThousand !== undefined ? { postgresCpuMsPerThousand } : {}),
    };
  } finally {
    await consumer.disconnect();
  }
}
