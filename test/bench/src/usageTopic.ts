import { SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { topicValueSubject, usageEventAvroSchema, type UsageEventAvroRecord } from '@tally/schemas';
import { waitFor } from '@tally/test-support';
import { Partitioners, type Admin, type Kafka, type Message } from 'kafkajs';
import { customerIdOf } from './benchBalances';
import { formatCount, progress } from './progress';

/** As the production usage topic (scripts/lib/env.sh): the consumer spreads partitions over its workers. */
export const USAGE_PARTITIONS = 6;

export async function createTopic(admin: Admin, topic: string, partitions = USAGE_PARTITIONS): Promise<void> {
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] });
  // kafkajs's own waitForLeaders fails outright when the broker still calls the new topic unknown
  // (UNKNOWN_TOPIC_OR_PARTITION), which a busy KRaft broker does for a moment; this waits instead.
  await waitFor(
    async () => {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const found = topics[0]?.partitions ?? [];
      return found.length === partitions && found.every((partition) => partition.leader >= 0);
    },
    { description: `leaders for every partition of ${topic}`, timeoutMs: 60_000, intervalMs: 100 },
  );
}

/** Registers the usage event schema under the topic's value subject, as a producer would; returns its id. */
export async function registerUsageSchema(registry: SchemaRegistry, topic: string): Promise<number> {
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) },
    { subject: topicValueSubject(topic) },
  );
  return id;
}

/**
 * The bench's usage event: `api_call` with a `tokens` quantity from 1 to 1000, so both of the
 * product's rules price it. The property is wrapped in its union branch ({ long: n }), as avsc
 * needs for a union with two numeric branches.
 */
export function benchUsageRecord(id: string, customerIndex: number, sequence: number, timestamp: number): UsageEventAvroRecord {
  return {
    id,
    customerId: customerIdOf(customerIndex),
    event: 'api_call',
    timestamp,
    properties: { tokens: { long: 1 + ((sequence * 31) % 1000) } },
  };
}

/** One Kafka message: keyed by customer (the consumer's ordering unit), Confluent-framed Avro. */
export async function usageMessage(registry: SchemaRegistry, schemaId: number, record: UsageEventAvroRecord): Promise<Message> {
  return { key: record.customerId, value: await registry.encode(schemaId, record) };
}

export interface PreloadOptions {
  readonly kafka: Kafka;
  readonly registry: SchemaRegistry;
  readonly schemaId: number;
  readonly topic: string;
  readonly events: number;
  readonly customers: number;
  /** Makes usage event ids unique to the run. */
  readonly idPrefix: string;
}

const PRELOAD_BATCH = 5000;
const PRELOAD_IN_FLIGHT = 4;

/** Writes the events round-robin over the customers, a few batches in flight at a time. */
export async function preloadUsageEvents(options: PreloadOptions): Promise<void> {
  const { kafka, registry, schemaId, topic, events, customers, idPrefix } = options;
  // Murmur2 on the key, as the Java client and the consumer's own dead-letter producer.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const now = Date.now();
    const inFlight = new Set<Promise<unknown>>();
    let reported = 0;
    for (let start = 0; start < events; start += PRELOAD_BATCH) {
      const messages: Message[] = [];
      for (let sequence = start; sequence < Math.min(events, start + PRELOAD_BATCH); sequence += 1) {
        messages.push(await usageMessage(registry, schemaId, benchUsageRecord(`${idPrefix}-${sequence}`, sequence % customers, sequence, now)));
      }
      const sent = producer.send({ topic, acks: -1, messages }).finally(() => inFlight.delete(sent));
      inFlight.add(sent);
      if (inFlight.size >= PRELOAD_IN_FLIGHT) await Promise.race(inFlight);
      if (start + PRELOAD_BATCH - reported >= 100_000 || start + PRELOAD_BATCH >= events) {
        reported = start + PRELOAD_BATCH;
        progress(`pre-loading ${topic}: ${formatCount(Math.min(events, reported))} of ${formatCount(events)} events`);
      }
    }
    await Promise.all(inFlight);
  } finally {
    await producer.disconnect();
  }
}
