/**
 * The integration tests' shared setup (not a test itself: jest runs only *.unit.spec.ts and
 * *.int.spec.ts; the .spec.ts name keeps it out of the build). Each kit is one test's own world:
 * a migrated PostgreSQL schema, a usage topic and its DLQ, a consumer group, the usage schema
 * registered for the topic, and helpers to create products, open balances and produce events.
 */
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { createCatalogCache, createPostgresCatalogStore, type CatalogCache, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, formatCredits, parseCredits, type CreditProductDto } from '@tally/domain';
import { createPostgresEventStore, type EventStore, type RecordedEvent } from '@tally/event-store';
import { readTopicToEnds } from '@tally/kafka';
import {
  createBalanceRegistryCache,
  createLedgerService,
  createPostgresBalanceRegistry,
  createUsageBalanceWrites,
  type BalanceRegistry,
  type BalanceRegistryCache,
  type LedgerService,
} from '@tally/ledger';
import { topicValueSubject, usageEventAvroSchema } from '@tally/schemas';
import {
  createTestKafka,
  createTestRegistry,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  uniqueName,
  waitFor,
  type TestSchema,
} from '@tally/test-support';
import type { Admin, IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import pino, { type Logger } from 'pino';
import { createUsageConsumer, type UsageConsumer } from './usageConsumer';
import type { UsageConsumerOptions } from './usageConsumerOptions';

export interface UsageRecord {
  readonly id: string;
  readonly customerId: string;
  readonly event: string;
  readonly timestamp: number;
  readonly properties?: Readonly<Record<string, null | boolean | number | string>>;
}

/** When every record of usageRecord happened: one fixed instant, so the ledger's times are the same in every run. */
export const USAGE_TIME = Date.UTC(2026, 2, 1, 12);

/** A usage record at USAGE_TIME, of `api_call` unless told; with properties only when given (the consumer reads none as empty). */
export function usageRecord(id: string, customerId: string, event = 'api_call', properties?: UsageRecord['properties']): UsageRecord {
  return { id, customerId, event, timestamp: USAGE_TIME, ...(properties !== undefined ? { properties } : {}) };
}

/** Waits until the consumer has taken `count` messages (metered, skipped or dead-lettered), or fails at the deadline. */
export async function consumedAtLeast(consumer: UsageConsumer, count: number, timeoutMs = 90_000): Promise<void> {
  await waitFor(() => consumer.counters().consumed >= count, { description: `${count} messages consumed`, timeoutMs });
}

export interface OutgoingMessage {
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers?: IHeaders;
  /** Set to bypass kafkajs's key partitioner, whose murmur2 takes minutes on a key near 1 MB. */
  readonly partition?: number;
}

export interface MeteringTestKit {
  readonly db: TestSchema;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  readonly usageSchemaId: number;
  readonly eventStore: EventStore;
  readonly catalogStore: CatalogStore;
  readonly catalogCache: CatalogCache;
  /** The balance registry's PostgreSQL store, uncached. */
  readonly registryStore: BalanceRegistry;
  /** The balance registry as the consumers read it, as the main job wires it: cached, LISTENing. */
  readonly balanceRegistry: BalanceRegistryCache;
  readonly ledger: LedgerService;
  readonly logger: Logger;
  createProduct(dto: Omit<CreditProductDto, 'description' | 'bundles'> & Partial<CreditProductDto>): Promise<void>;
  /** Opens a balance through the ledger service, as the API does; returns its id. */
  openBalance(customerId: string, productId: string, startingBalance: string): Promise<string>;
  /** Confluent-framed Avro with the kit's registered usage schema. */
  avro(usage: UsageRecord): Buffer;
  json(usage: UsageRecord): Buffer;
  produce(messages: readonly OutgoingMessage[]): Promise<void>;
  startConsumer(overrides?: Partial<UsageConsumerOptions>): Promise<UsageConsumer>;
  /** The balance as the fold of its stream, as a decimal string. */
  balanceOf(balanceId: string): Promise<string>;
  streamOf(balanceId: string): Promise<RecordedEvent[]>;
  /** Reads `count` messages of a topic from its start (and fails after the deadline). */
  readTopic(topic: string, count: number, timeoutMs?: number): Promise<KafkaMessage[]>;
  close(): Promise<void>;
}

/** avsc writes a union value wrapped in its branch name; a number is a long when it is an integer. */
function avroProperty(value: null | boolean | number | string) {
  if (value === null) return null;
  if (typeof value === 'boolean') return { boolean: value };
  if (typeof value === 'string') return { string: value };
  return Number.isInteger(value) ? { long: value } : { double: value };
}

export async function createMeteringTestKit({ partitions = 1 }: { partitions?: number } = {}): Promise<MeteringTestKit> {
  const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
  const db = await createTestSchema({ prefix: 'metering' });
  const kafka = createTestKafka(uniqueName('metering-test'));
  const admin = kafka.admin();
  await admin.connect();
  const topic = await createTestTopic(admin, { prefix: 'usage', partitions });
  const dlqTopic = await createTestTopic(admin, { prefix: 'usage_dlq', partitions: 1 });
  const groupId = uniqueName('metering');
  const registry = createTestRegistry();
  const { id: usageSchemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) },
    { subject: topicValueSubject(topic) },
  );
  // Encoding goes through the registry client once, to get the avsc type it caches.
  const usageType = (await registry.getSchema(usageSchemaId)) as { toBuffer(value: unknown): Buffer };
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();

  const eventStore = createPostgresEventStore({ pool: db.pool, logger });
  const catalogStore = createPostgresCatalogStore({ pool: db.pool, logger });
  const catalogCache = createCatalogCache({ store: catalogStore, logger, refreshIntervalMs: 200 });
  await catalogCache.start();
  const registryStore = createPostgresBalanceRegistry({ pool: db.pool });
  const balanceRegistry = createBalanceRegistryCache({ store: registryStore, pool: db.pool, logger });
  await balanceRegistry.start();
  const ledger = createLedgerService({ eventStore, catalog: catalogStore, balanceRegistry: registryStore, logger });
  const consumers: UsageConsumer[] = [];

  return {
    db,
    kafka,
    admin,
    topic,
    dlqTopic,
    groupId,
    usageSchemaId,
    eventStore,
    catalogStore,
    catalogCache,
    registryStore,
    balanceRegistry,
    ledger,
    logger,

    async createProduct(dto) {
      await catalogStore.createProduct(creditProductFromDto({ description: '', bundles: [], ...dto }));
    },

    async openBalance(customerId, productId, startingBalance) {
      const { balance } = await ledger.openBalance({ customerId, productId, startingBalance: parseCredits(startingBalance) });
      return balance.balanceId;
    },

    avro(usage) {
      const properties = Object.fromEntries(Object.entries(usage.properties ?? {}).map(([key, value]) => [key, avroProperty(value)]));
      const header = Buffer.alloc(5);
      header.writeInt32BE(usageSchemaId, 1);
      return Buffer.concat([header, usageType.toBuffer({ ...usage, properties })]);
    },

    json(usage) {
      return Buffer.from(JSON.stringify(usage));
    },

    async produce(messages) {
      await producer.send({ topic, acks: -1, messages: messages.map((message) => ({ ...message })) });
    },

    async startConsumer(overrides = {}) {
      const consumer = createUsageConsumer({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('metering') },
        groupId,
        topic,
        dlqTopic,
        registryUrl: stackConfig.schemaRegistryUrl,
        eventStore,
        // Over the store the test gives, if it gives one (a poisoned or unreachable store must
        // reach the appends too, which go through the command path).
        balanceWrites: createUsageBalanceWrites({ eventStore: overrides.eventStore ?? eventStore, logger }),
        balanceRegistry,
        catalogCache,
        logger,
        sessionTimeoutMs: 10_000,
        ...overrides,
      });
      consumers.push(consumer);
      await consumer.start();
      return consumer;
    },

    async balanceOf(balanceId) {
      const { balance } = await ledger.getBalance(balanceId);
      return formatCredits(balance.balance);
    },

    streamOf(balanceId) {
      return eventStore.readStream(balanceStreamId(balanceId));
    },

    async readTopic(name, count, timeoutMs = 30_000) {
      // First until the topic holds `count` (producers here are not transactional: an offset is a
      // message), then with the one reader there is, whose own watchdog bounds the read itself.
      // A reader of its own, waiting for `count` inside a consumer group's run, once stalled a CI
      // run for 180 s with no deadline on its joining or leaving.
      await waitFor(
        async () => (await admin.fetchTopicOffsets(name)).reduce((held, { low, high }) => held + Number(high) - Number(low), 0) >= count,
        { description: `${count} messages on ${name}`, timeoutMs },
      );
      const messages: KafkaMessage[] = [];
      await readTopicToEnds({ kafka, topic: name, purpose: uniqueName('reader'), idleTimeoutMs: timeoutMs, eachBatch: async (_partition, batch) => void messages.push(...batch) });
      return messages;
    },

    async close() {
      await Promise.all(consumers.map((consumer) => consumer.stop()));
      catalogCache.stop();
      await balanceRegistry.close();
      await producer.disconnect();
      await deleteTopics(admin, [topic, dlqTopic]).catch((error: unknown) => logger.warn({ err: error }, 'topic cleanup failed'));
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
      await eventStore.close();
      await db.drop();
    },
  };
}
