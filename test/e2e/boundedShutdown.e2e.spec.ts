import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, formatCredits, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, type LedgerService } from '@tally/ledger';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  startKafkaProxy,
  startTallyProcess,
  startTcpProxyFor,
  uniqueName,
  waitFor,
  type KafkaProxy,
  type TallyProcess,
  type TcpProxy,
  type TestSchema,
} from '@tally/test-support';
import type { Admin, Kafka, Producer } from 'kafkajs';
import pino from 'pino';

/**
 * SIGTERM ends the main job within TALLY_SHUTDOWN_TIMEOUT_MS while its dependencies do not
 * answer, and the usage it had in hand is applied once, later, by the process that takes over.
 *
 * The process reaches PostgreSQL, Redis and Kafka only through proxies this test controls (the
 * Kafka one rewrites the broker's advertised address, so every Kafka connection goes through
 * it), and the test stalls them: a partition, where nothing fails and nothing answers. The
 * shared services keep running for everyone else.
 */

jest.setTimeout(240_000);

const SHUTDOWN_TIMEOUT_MS = 4_000;
/** Process exit after the deadline: flushing logs, the kernel reaping it, the event reaching jest. */
const EXIT_SLACK_MS = 3_000;
const PRODUCE = 0;
const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

interface World {
  readonly env: Record<string, string>;
  readonly postgres: TcpProxy;
  readonly redis: TcpProxy;
  readonly kafka: KafkaProxy;
  readonly dlqTopic: string;
  readonly balanceNow: () => Promise<string>;
  /** Usage ids of the balance's CreditConsumed events, in stream order. */
  readonly chargedUsageIds: () => Promise<string[]>;
  send(values: readonly string[]): Promise<void>;
  usage(index: number): string;
}

describe('bounded shutdown of the main job', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let ledger: LedgerService;
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;
  const topics: string[] = [];
  const proxies: TcpProxy[] = [];
  const processes: TallyProcess[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'bounded_shutdown' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events` });
    ledger = createLedgerService({
      eventStore,
      catalog: createPostgresCatalogStore({ pool: db.pool, logger }),
      balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }),
      logger,
      clock: () => new Date(),
    });
    kafka = createTestKafka('bounded-shutdown');
    admin = kafka.admin();
    await admin.connect();
    producer = kafka.producer();
    await producer.connect();
  });

  afterAll(async () => {
    for (const tally of processes) await tally.kill('SIGKILL');
    for (const proxy of proxies) await proxy.close();
    await producer?.disconnect();
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  /** Topics, a product, a customer's balance of 1000 credits, and the proxies in front of everything. */
  async function createWorld(name: string): Promise<World> {
    const usageTopic = await createTestTopic(admin, { prefix: `${name}_usage`, partitions: 2 });
    const dlqTopic = await createTestTopic(admin, { prefix: `${name}_dlq` });
    const ledgerTopic = await createTestTopic(admin, { prefix: `${name}_ledger` });
    topics.push(usageTopic, dlqTopic, ledgerTopic);

    const productId = `product-${randomUUID()}`;
    await createPostgresCatalogStore({ pool: db.pool, logger }).createProduct(
      creditProductFromDto({
        id: productId,
        name: 'API credits',
        description: '',
        bundles: [],
        lowBalanceThreshold: null,
        consumption: [{ event: 'api_call', credits: '1' }],
      }),
    );
    const customerId = `customer-${randomUUID()}`;
    const { balance } = await ledger.openBalance({ customerId, productId, startingBalance: parseCredits('1000') });

    const postgres = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    const redis = await startTcpProxyFor(stackConfig.redisUrl);
    const kafkaProxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    proxies.push(postgres.proxy, redis.proxy, kafkaProxy);

    const usage = (index: number) => JSON.stringify({ id: `${name}-usage-${index}`, customerId, event: 'api_call', timestamp: Date.now() });
    return {
      env: {
        TALLY_ROLES: 'consumer,projector,relay,scheduler,api',
        TALLY_DATABASE_URL: postgres.url,
        TALLY_DATABASE_SCHEMA: db.schema,
        TALLY_REDIS_URL: redis.url,
        TALLY_REDIS_KEY_PREFIX: uniqueName(name),
        TALLY_KAFKA_BROKERS: kafkaProxy.broker,
        TALLY_USAGE_TOPIC: usageTopic,
        TALLY_DLQ_TOPIC: dlqTopic,
        TALLY_LEDGER_TOPIC: ledgerTopic,
        TALLY_CONSUMER_GROUP: uniqueName(`${name}_group`),
        TALLY_API_PORT: '0',
        TALLY_API_KEYS: 'bounded-shutdown-test-key',
        TALLY_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
        // Tells the test when a PostgreSQL partition has been felt (below). Every other bound
        // keeps its default, longer than the shutdown's: only the shutdown's own bound ends it in time.
        TALLY_RELAY_LEASE_TIMEOUT_MS: '1000',
      },
      postgres: postgres.proxy,
      redis: redis.proxy,
      kafka: kafkaProxy,
      dlqTopic,
      balanceNow: async () => formatCredits((await ledger.getBalance(balance.balanceId)).balance.balance),
      chargedUsageIds: async () =>
        (await eventStore.readStream(balanceStreamId(balance.balanceId)))
          .filter((event) => event.type === 'CreditConsumed')
          .map((event) => (event.data as { usage: { eventId: string } | null }).usage?.eventId ?? 'none'),
      // The test's own producer goes straight to Kafka: only the process under test is cut off.
      send: async (values) => {
        await producer.send({ topic: usageTopic, messages: values.map((value) => ({ key: customerId, value })) });
      },
      usage,
    };
  }

  /**
   * With `roles`, the process that takes over: it must stop cleanly, so it keeps the default bound
   * (a clean stop waits for the consumer's fetch in flight, up to kafkajs's 5 s long poll).
   */
  async function start(world: World, roles?: string): Promise<TallyProcess> {
    const env = roles === undefined ? world.env : { ...world.env, TALLY_ROLES: roles, TALLY_SHUTDOWN_TIMEOUT_MS: '15000' };
    const tally = await startTallyProcess({ env });
    processes.push(tally);
    return tally;
  }

  /** SIGTERM, and how long the exit took. */
  async function terminate(tally: TallyProcess): Promise<{ exit: number | string; tookMs: number }> {
    const signalledAt = Date.now();
    const exit = await tally.kill('SIGTERM');
    return { exit, tookMs: Date.now() - signalledAt };
  }

  const timedOut = (tally: TallyProcess) => tally.lines.some((line) => line.includes('did not stop within TALLY_SHUTDOWN_TIMEOUT_MS'));
  const range = (from: number, count: number) => Array.from({ length: count }, (_, index) => from + index);

  it('ends within the bound while PostgreSQL, Redis and Kafka are partitioned; the usage in hand is applied once afterwards', async () => {
    const world = await createWorld('partition');
    const first = await start(world);
    await world.send(range(0, 20).map(world.usage));
    await waitFor(async () => (await world.balanceNow()) === '980', { description: 'the first 20 usage events metered', timeoutMs: 60_000 });

    // PostgreSQL first, so that the consumer fetches the next usage and is held where it appends it.
    world.postgres.stall();
    await world.send(range(20, 10).map(world.usage));
    // The relay's lease heartbeat is the first to time out: from then on the process is surely
    // waiting on PostgreSQL, and the consumer has had the new usage in hand for a second or more.
    await waitFor(() => first.lines.some((line) => line.includes('lost the relay lease')), {
      description: 'the relay noticing the partition',
      timeoutMs: 30_000,
    });
    world.redis.stall();
    world.kafka.stall();

    const { exit, tookMs } = await terminate(first);
    expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
    // It was held up (so the bound, not a clean stop, ended it) and said so.
    expect(exit).toBe(1);
    expect(timedOut(first)).toBe(true);
    expect(await world.balanceNow()).toBe('980');

    // The partition heals; the process that takes over gets the uncommitted usage again.
    world.postgres.resume();
    world.redis.resume();
    world.kafka.resume();
    const second = await start(world, 'consumer');
    await waitFor(async () => (await world.balanceNow()) === '970', { description: 'the 10 redelivered usage events metered', timeoutMs: 60_000 });
    expect((await terminate(second)).exit).toBe(0);
    // Once: 30 usage events, 30 charges, each usage id once.
    expect((await world.chargedUsageIds()).sort()).toEqual(range(0, 30).map((index) => `partition-usage-${index}`).sort());
    expect(await world.balanceNow()).toBe('970');
  });

  it('ends within the bound while a dead letter waits for Kafka to acknowledge it; the batch is applied once afterwards', async () => {
    const world = await createWorld('dlq');
    const first = await start(world);
    await world.send(range(0, 5).map(world.usage));
    await waitFor(async () => (await world.balanceNow()) === '995', { description: 'the first 5 usage events metered', timeoutMs: 60_000 });

    // Every produce request of the process now goes unanswered; fetches still work.
    world.kafka.swallow([PRODUCE]);
    await world.send(['{ not json', ...range(5, 5).map(world.usage)]);
    await waitFor(() => world.kafka.swallowedCount() > 0, { description: 'the dead letter sent and unanswered', timeoutMs: 30_000 });

    const { exit, tookMs } = await terminate(first);
    expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
    expect(exit).toBe(1);
    expect(timedOut(first)).toBe(true);
    // The batch's usage was appended before its dead letter was sent (dead letters follow the
    // append, so a bisected chunk sends each once), but its offsets were not committed: the
    // dead letter was never acknowledged.
    expect(await world.balanceNow()).toBe('990');

    world.kafka.swallow([]);
    const second = await start(world, 'consumer');
    // The redelivered batch: its usage is found metered (its markers), its dead letter sent now.
    const deadLetters = async () => (await admin.fetchTopicOffsets(world.dlqTopic)).reduce((sum, offset) => sum + Number(offset.high), 0);
    await waitFor(async () => (await deadLetters()) > 0, { description: 'the redelivered batch dead-lettered its bad message', timeoutMs: 60_000 });
    expect((await terminate(second)).exit).toBe(0);
    expect((await world.chargedUsageIds()).sort()).toEqual(range(0, 10).map((index) => `dlq-usage-${index}`).sort());
    expect(await world.balanceNow()).toBe('990');
    // The dead letter arrived, once: the swallowed send never reached the broker.
    expect(await deadLetters()).toBe(1);
  });
});
