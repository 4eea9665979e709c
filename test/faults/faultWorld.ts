import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { readTopicToEnds } from '@tally/kafka';
import { createBalanceReadModel, type BalanceReadModel } from '@tally/projections';
import { topicValueSubject, usageEventAvroSchema } from '@tally/schemas';
import {
  createTestKafka,
  createTestRegistry,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  startTallyProcess,
  uniqueName,
  type TallyProcess,
  type TestSchema,
} from '@tally/test-support';
import { Redis } from 'ioredis';
import type { Admin, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import pino from 'pino';
import { toAvroUsageEvent, type Role } from '@tally/tally';
import { createCreditModel, type CreditModel } from './creditModel';
import { createSeededRandom, type SeededRandom } from './seededRandom';
import { createTallyApiClient, type TallyApiClient } from './tallyApiClient';
import { FAULT_PRODUCTS, type OutgoingUsage } from './usageTraffic';
import { waitWhileProgressing } from './waitWhileProgressing';

/** One Tally process of a scenario, restartable with the same configuration. */
export interface ManagedTally {
  readonly label: string;
  readonly roles: readonly Role[];
  current(): TallyProcess;
  alive(): boolean;
  /** Sends the signal and waits for the exit, which then counts as intended; resolves with the exit code or signal. */
  kill(signal: NodeJS.Signals): Promise<number | string>;
  /** Starts it again (after a kill); resolves once it runs. */
  restart(): Promise<void>;
}

export interface FaultWorld {
  readonly name: string;
  readonly random: SeededRandom;
  readonly model: CreditModel;
  readonly db: TestSchema;
  readonly eventStore: EventStore;
  readonly redis: Redis;
  /** The projection as the API reads it, under this world's key prefix. */
  readonly readModel: BalanceReadModel;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topics: { readonly usage: string; readonly deadLetter: string; readonly ledger: string };
  readonly groupId: string;
  readonly keyPrefix: string;
  readonly usageSchemaId: number;
  readonly api: TallyApiClient;
  /** `env` adds to or overrides the scenario's configuration for this process. */
  startTally(label: string, roles: readonly Role[], env?: Readonly<Record<string, string>>): Promise<ManagedTally>;
  /** A TCP port nothing listens on, for a second API process. */
  freePort(): Promise<number>;
  /** Creates FAULT_PRODUCTS and opens, through the API, a compute balance per customer and a storage balance for every third. */
  openCatalog(customers: readonly string[], startingBalance?: { compute: string; storage: string }): Promise<void>;
  encode(outgoing: OutgoingUsage): Message;
  /** Any record as Avro with the registered usage schema, without the 5-byte frame (for hostile variants). */
  avroBody(record: unknown): Buffer;
  /** Sends raw messages to the usage topic once (acks from all in-sync replicas). */
  produce(messages: readonly Message[]): Promise<void>;
  /** Sends usage events in chunks, retrying a chunk through broker outages until the deadline. */
  publish(usages: readonly OutgoingUsage[], deadlineMs?: number): Promise<void>;
  /** CreditConsumed events in the event store (one per usage event and balance charged). */
  consumedCount(): Promise<number>;
  /** Resolves once the consumer group has committed every message of the usage topic; rejects when its offsets stop moving. */
  waitForGroupCaughtUp(): Promise<void>;
  /** Every message of a topic, from its start to its high watermarks when called. */
  readWholeTopic(topic: string): Promise<KafkaMessage[]>;
  /** Processes that exited without being told to: crashes. */
  unexpectedExits(): readonly string[];
  /** Where close() writes every process's output, one file per process started. */
  readonly logDir: string;
  close(): Promise<void>;
}

const PUBLISH_CHUNK = 200;

/**
 * A free port below the kernel's ephemeral range: the API is killed and restarted on the same
 * port, and a port from that range may meanwhile become the local end of any outgoing
 * connection on this busy machine, making the restart fail with EADDRINUSE.
 */
async function freeApiPort(random: SeededRandom): Promise<number> {
  const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const high = Math.min(ephemeralLow ?? 32768, 65536) - 1;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = random.int(Math.max(1024, high - 12_000), high);
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error('no free TCP port below the ephemeral range');
}

/**
 * One scenario's own Tally: a migrated schema in the test database, usage, DLQ and ledger topics,
 * a consumer group, a Redis key prefix, an API key and port, and the main job started as OS
 * processes with any subset of roles. Nothing is shared with other scenarios or other tests
 * except the services themselves.
 */
export async function createFaultWorld(scenario: string, { partitions = 6 }: { partitions?: number } = {}): Promise<FaultWorld> {
  const name = uniqueName(`faults_${scenario}`);
  const random = createSeededRandom();
  // Printed now, not only in the report: a run that hangs until jest's deadline prints no report,
  // and this is what replays it (TALLY_FAULTS_SEED).
  process.stderr.write(`fault scenario ${scenario}: seed ${random.seed}, world ${name}\n`);
  const model = createCreditModel();
  const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
  const db = await createTestSchema({ prefix: `faults_${scenario}`, max: 4 });
  const eventStore = createPostgresEventStore({ pool: db.pool, logger });
  // Unbounded retries: the suite's own reads must ride out the Redis restart like Tally does.
  const redis = new Redis(stackConfig.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  const keyPrefix = name;
  const readModel = createBalanceReadModel({ redis, keyPrefix });
  const kafka = createTestKafka(name);
  const admin = kafka.admin();
  await admin.connect();
  const topics = {
    usage: await createTestTopic(admin, { prefix: `${scenario}_usage`, partitions }),
    deadLetter: await createTestTopic(admin, { prefix: `${scenario}_dlq`, partitions: 3 }),
    ledger: await createTestTopic(admin, { prefix: `${scenario}_ledger`, partitions: 1 }),
  };
  const registry = createTestRegistry();
  const { id: usageSchemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) },
    { subject: topicValueSubject(topics.usage) },
  );
  const usageType = (await registry.getSchema(usageSchemaId)) as { toBuffer(value: unknown): Buffer };
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 3, maxRetryTime: 2000 } });
  await producer.connect();
  const groupId = name;
  const apiKey = `faults_${uniqueName('key')}_${name}`.slice(0, 60);
  const apiPort = await freeApiPort(random);
  const api = createTallyApiClient({ baseUrl: `http://127.0.0.1:${apiPort}`, apiKey });
  const managed: ManagedTally[] = [];
  const crashes: string[] = [];
  const started: Array<{ label: string; process: TallyProcess }> = [];
  const logDir = path.join(process.env.TALLY_HOME ?? path.resolve(__dirname, '..', '..', '.tally'), 'logs', 'faults', name);

  const envFor = (label: string, roles: readonly Role[]): Record<string, string> => ({
    TALLY_ROLES: roles.join(','),
    TALLY_KAFKA_BROKERS: stackConfig.kafkaBrokers.join(','),
    TALLY_KAFKA_CLIENT_ID: `${name}-${label}`,
    TALLY_SCHEMA_REGISTRY_URL: stackConfig.schemaRegistryUrl,
    TALLY_DATABASE_URL: db.connectionString,
    TALLY_DATABASE_SCHEMA: db.schema,
    // Several processes per scenario on a server other tests use too.
    TALLY_DATABASE_POOL_SIZE: '5',
    TALLY_REDIS_URL: stackConfig.redisUrl,
    TALLY_REDIS_KEY_PREFIX: keyPrefix,
    TALLY_USAGE_TOPIC: topics.usage,
    TALLY_DLQ_TOPIC: topics.deadLetter,
    TALLY_LEDGER_TOPIC: topics.ledger,
    TALLY_CONSUMER_GROUP: groupId,
    TALLY_CATALOG_REFRESH_MS: '500',
    // The API's port for the API process; the others serve /health and /metrics on a free one.
    TALLY_API_PORT: roles.includes('api') ? String(apiPort) : '0',
    TALLY_API_KEYS: apiKey,
  });

  async function startTally(label: string, roles: readonly Role[], extraEnv: Readonly<Record<string, string>> = {}): Promise<ManagedTally> {
    const env = { ...envFor(label, roles), ...extraEnv };
    let running: TallyProcess;
    let exitIntended = false;
    const launch = async () => {
      exitIntended = false;
      const launched = await startTallyProcess({ env });
      void launched.exited().then((code) => {
        if (!exitIntended) crashes.push(`${label} (pid ${launched.pid}) exited with ${code}: ${launched.lines.slice(-8).join('\n')}`);
      });
      started.push({ label, process: launched });
      running = launched;
    };
    await launch();
    const handle: ManagedTally = {
      label,
      roles,
      current: () => running,
      alive: () => running.child.exitCode === null && running.child.signalCode === null,
      kill(signal) {
        exitIntended = true;
        return running.kill(signal);
      },
      restart: launch,
    };
    managed.push(handle);
    return handle;
  }

  function encode({ usage, format }: OutgoingUsage): Message {
    if (format === 'json') return { key: usage.customerId, value: Buffer.from(JSON.stringify(usage)) };
    const header = Buffer.alloc(5);
    header.writeInt32BE(usageSchemaId, 1);
    return { key: usage.customerId, value: Buffer.concat([header, usageType.toBuffer(toAvroUsageEvent({ ...usage }))]) };
  }

  async function produce(messages: readonly Message[]): Promise<void> {
    await producer.send({ topic: topics.usage, acks: -1, messages: [...messages] });
  }

  return {
    name,
    random,
    model,
    db,
    eventStore,
    redis,
    readModel,
    kafka,
    admin,
    topics,
    groupId,
    keyPrefix,
    usageSchemaId,
    api,
    startTally,
    freePort: () => freeApiPort(random),

    async openCatalog(customers, startingBalance = { compute: '100', storage: '50' }) {
      for (const product of FAULT_PRODUCTS) {
        await api.createProduct(product);
        model.addProduct(product);
      }
      for (const [index, customerId] of customers.entries()) {
        const owned = index % 3 === 0 ? (['compute', 'storage'] as const) : (['compute'] as const);
        for (const productId of owned) {
          const balanceId = await api.openBalance(customerId, productId, startingBalance[productId]);
          model.openBalance({ balanceId, customerId, productId, starting: startingBalance[productId] });
        }
      }
    },

    encode,
    avroBody: (record) => usageType.toBuffer(record),
    produce,

    async publish(usages, deadlineMs = 240_000) {
      const deadline = Date.now() + deadlineMs;
      for (let start = 0; start < usages.length; start += PUBLISH_CHUNK) {
        const chunk = usages.slice(start, start + PUBLISH_CHUNK).map(encode);
        for (;;) {
          try {
            await produce(chunk);
            break;
          } catch (error) {
            // A chunk sent twice after an ambiguous failure is only more duplicates: Tally dedups them.
            if (Date.now() > deadline) throw error;
            await delay(500);
          }
        }
      }
    },

    async consumedCount() {
      const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM events WHERE type = 'CreditConsumed'");
      return rows[0]!.n;
    },

    async waitForGroupCaughtUp() {
      await waitWhileProgressing(`group ${groupId} at the end of ${topics.usage}`, async () => {
        const ends = await admin.fetchTopicOffsets(topics.usage);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topics.usage] });
        const at = new Map(committed!.partitions.map(({ partition, offset }) => [partition, BigInt(offset)]));
        // A group commits nothing for a partition it never read a message from, so an empty one
        // (high = low) is never behind.
        const behind = ends.filter(({ partition, high, low }) => high !== low && (at.get(partition) ?? -1n) < BigInt(high));
        return {
          done: behind.length === 0,
          mark: [...at.values()].join(','),
          detail: `partitions behind (committed/end): ${behind.map(({ partition, high }) => `${partition}: ${at.get(partition)}/${high}`).join(', ')}`,
        };
      });
    },

    async readWholeTopic(topic) {
      const messages: KafkaMessage[] = [];
      await readTopicToEnds({
        kafka,
        topic,
        purpose: 'faults-reader',
        maxBytes: 16 * 1024 * 1024,
        eachBatch: async (_partition, batch) => void messages.push(...batch),
      });
      return messages;
    },

    unexpectedExits: () => crashes,
    logDir,

    async close() {
      // SIGTERM, so consumers leave their group and it can be deleted; SIGKILL if one hangs.
      await Promise.all(
        managed
          .filter((handle) => handle.alive())
          .map(async (handle) => {
            const timer = setTimeout(() => void handle.kill('SIGKILL'), 15_000);
            await handle.kill('SIGTERM');
            clearTimeout(timer);
          }),
      );
      mkdirSync(logDir, { recursive: true });
      for (const { label, process: tally } of started) writeFileSync(path.join(logDir, `${label}-${tally.pid}.log`), `${tally.lines.join('\n')}\n`);
      await producer.disconnect().catch(() => undefined);
      await deleteTopics(admin, Object.values(topics)).catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
      await eventStore.close();
      await db.drop();
    },
  };
}
