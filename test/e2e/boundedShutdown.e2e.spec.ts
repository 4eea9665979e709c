import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, formatCredits, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, type LedgerService } from '@tally/ledger';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  startTallyProcess,
  startTcpProxy,
  startTcpProxyFor,
  uniqueName,
  waitFor,
  type TallyProcess,
  type TcpProxy,
  type TestSchema,
} from '@tally/test-support';
import type { Admin, Producer } from 'kafkajs';
import pino from 'pino';

/**
 * SIGTERM ends the main job within TALLY_SHUTDOWN_TIMEOUT_MS while PostgreSQL and Redis do not
 * answer, and the usage it had in hand is applied once, later, by the process that takes over.
 *
 * The process reaches PostgreSQL, Redis and Kafka through TCP proxies this test controls, and
 * the test stalls them (a partition: nothing fails, nothing answers), so the shared services
 * keep running for everyone else. Kafka only partly: its proxy carries the bootstrap connection,
 * but kafkajs then connects to the address the broker advertises (127.0.0.1:9092), which no
 * proxy of ours sits in front of. The consumer therefore still fetches the usage below and is
 * held up where it appends it, in PostgreSQL.
 */

jest.setTimeout(240_000);

const SHUTDOWN_TIMEOUT_MS = 4_000;
/** Process exit after the deadline: flushing logs, the kernel reaping it, the event reaching jest. */
const EXIT_SLACK_MS = 3_000;
const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('bounded shutdown of the main job', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let ledger: LedgerService;
  let admin: Admin;
  let producer: Producer;
  const topics: string[] = [];
  const proxies: TcpProxy[] = [];
  const processes: TallyProcess[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'bounded_shutdown' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events` });
    ledger = createLedgerService({ eventStore, catalog: createPostgresCatalogStore({ pool: db.pool, logger }), logger, clock: () => new Date() });
    const kafka = createTestKafka('bounded-shutdown');
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

  it('ends within TALLY_SHUTDOWN_TIMEOUT_MS while PostgreSQL and Redis are partitioned; the usage in hand is applied once afterwards', async () => {
    const usageTopic = await createTestTopic(admin, { prefix: 'shutdown_usage', partitions: 2 });
    const dlqTopic = await createTestTopic(admin, { prefix: 'shutdown_dlq' });
    const ledgerTopic = await createTestTopic(admin, { prefix: 'shutdown_ledger' });
    topics.push(usageTopic, dlqTopic, ledgerTopic);

    const productId = `product-${randomUUID()}`;
    await createPostgresCatalogStore({ pool: db.pool, logger }).createProduct(
      creditProductFromDto({ id: productId, name: 'API credits', description: '', bundles: [], lowBalanceThreshold: null, consumption: [{ event: 'api_call', credits: '1' }] }),
    );
    const customerId = `customer-${randomUUID()}`;
    const { balance } = await ledger.openBalance({ customerId, productId, startingBalance: parseCredits('1000') });
    const balanceNow = async () => formatCredits((await ledger.getBalance(balance.balanceId)).balance.balance);

    const { proxy: postgres, url: databaseUrl } = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    const { proxy: redis, url: redisUrl } = await startTcpProxyFor(stackConfig.redisUrl);
    const kafkaBootstrap = await startTcpProxy(Number(stackConfig.kafkaBrokers[0]!.split(':')[1]));
    proxies.push(postgres, redis, kafkaBootstrap);

    const env = {
      TALLY_ROLES: 'consumer,projector,relay,scheduler,api',
      TALLY_DATABASE_URL: databaseUrl,
      TALLY_DATABASE_SCHEMA: db.schema,
      TALLY_REDIS_URL: redisUrl,
      TALLY_REDIS_KEY_PREFIX: uniqueName('shutdown'),
      TALLY_KAFKA_BROKERS: `127.0.0.1:${kafkaBootstrap.port}`,
      TALLY_USAGE_TOPIC: usageTopic,
      TALLY_DLQ_TOPIC: dlqTopic,
      TALLY_LEDGER_TOPIC: ledgerTopic,
      TALLY_CONSUMER_GROUP: uniqueName('shutdown_group'),
      TALLY_API_PORT: '0',
      TALLY_API_KEYS: 'bounded-shutdown-test-key',
      TALLY_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      // Tells the test when the partition has been felt (see below); the other bounds keep their
      // defaults, all longer than the shutdown's, so only the shutdown's own bound can end it in time.
      TALLY_RELAY_LEASE_TIMEOUT_MS: '1000',
    };
    const send = async (from: number, count: number) => {
      const messages = Array.from({ length: count }, (_, index) => ({
        key: customerId,
        value: JSON.stringify({ id: `usage-${from + index}`, customerId, event: 'api_call', timestamp: Date.now() }),
      }));
      await producer.send({ topic: usageTopic, messages });
    };

    const first = await startTallyProcess({ env });
    processes.push(first);
    await send(0, 20);
    await waitFor(async () => (await balanceNow()) === '980', { description: 'the first 20 usage events metered', timeoutMs: 60_000 });

    // The partition. Then usage the consumer fetches (Kafka is reachable) and cannot append.
    postgres.stall();
    redis.stall();
    kafkaBootstrap.stall();
    await send(20, 10);
    // The relay's lease heartbeat is the first to time out: from then on the process is surely
    // waiting on PostgreSQL, and the consumer has had the new usage in hand for a second or more.
    await waitFor(() => first.lines.some((line) => line.includes('lost the relay lease')), {
      description: 'the relay noticing the partition',
      timeoutMs: 30_000,
    });

    const signalledAt = Date.now();
    const exit = await first.kill('SIGTERM');
    const tookMs = Date.now() - signalledAt;
    expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
    // It was held up (so the bound, not a clean stop, ended it) and says so.
    expect(exit).toBe(1);
    expect(first.lines.some((line) => line.includes('did not stop within TALLY_SHUTDOWN_TIMEOUT_MS'))).toBe(true);
    // Nothing of the partitioned batch reached the ledger.
    expect(await balanceNow()).toBe('980');

    // The partition heals; the process that takes over gets the uncommitted usage again.
    postgres.resume();
    redis.resume();
    kafkaBootstrap.resume();
    const second = await startTallyProcess({ env: { ...env, TALLY_ROLES: 'consumer' } });
    processes.push(second);
    await waitFor(async () => (await balanceNow()) === '970', { description: 'the 10 redelivered usage events metered', timeoutMs: 60_000 });

    // Once: 30 usage events, 30 charges, each usage id once.
    await second.kill('SIGTERM');
    const consumed = (await eventStore.readStream(balanceStreamId(balance.balanceId))).filter((event) => event.type === 'CreditConsumed');
    expect(consumed).toHaveLength(30);
    const usageIds = consumed.map((event) => (event.data as { usage: { eventId: string } | null }).usage?.eventId);
    expect(new Set(usageIds)).toEqual(new Set(Array.from({ length: 30 }, (_, index) => `usage-${index}`)));
    expect(await balanceNow()).toBe('970');
  });
});
