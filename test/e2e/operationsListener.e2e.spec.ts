import { randomUUID } from 'node:crypto';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  freePort,
  stackConfig,
  startTallyProcess,
  uniqueName,
  waitFor,
  type TallyProcess,
  type TestSchema,
} from '@tally/test-support';
import type { Admin, Producer } from 'kafkajs';

jest.setTimeout(120_000);

/**
 * A process without the api role, as a scaled-out consumer runs (`TALLY_ROLES=consumer`): it has
 * no API, yet Prometheus scrapes its /metrics and a probe asks its /health, on TALLY_API_PORT.
 */
describe('GET /metrics and /health of a consumer-only process', () => {
  let db: TestSchema;
  let admin: Admin;
  let producer: Producer;
  const topics: string[] = [];
  let tally: TallyProcess | undefined;
  let base: string;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'operations_listener' });
    const kafka = createTestKafka(uniqueName('operations-listener'));
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
    for (const part of ['usage', 'dlq']) topics.push(await createTestTopic(admin, { prefix: `operations_listener_${part}`, partitions: 1 }));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    tally = await startTallyProcess({
      env: {
        TALLY_ROLES: 'consumer',
        TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
        TALLY_DATABASE_SCHEMA: db.schema,
        TALLY_USAGE_TOPIC: topics[0]!,
        TALLY_DLQ_TOPIC: topics[1]!,
        TALLY_CONSUMER_GROUP: uniqueName('operations_listener'),
        TALLY_API_PORT: String(port),
      },
    });
  });

  afterAll(async () => {
    await tally?.kill('SIGTERM');
    await deleteTopics(admin, topics).catch(() => undefined);
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
    await db?.drop();
  });

  const consumed = async () => {
    const body = await (await fetch(`${base}/metrics`)).text();
    return Number(/^tally_consumer_consumed_total (\d+)$/m.exec(body)?.[1]);
  };

  it("answers /metrics with the consumer's metrics, counting what it consumes", async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const body = await response.text();
    for (const name of ['tally_consumer_consumed_total', 'tally_consumer_stalled_partitions', 'nodejs_heap_size_used_bytes']) expect(body).toContain(`# TYPE ${name} gauge`);
    // A customer with no balance: consumed and skipped, which the scrape then shows.
    const before = await consumed();
    await producer.send({ topic: topics[0]!, messages: [{ key: 'nobody', value: JSON.stringify({ id: randomUUID(), customerId: 'nobody', event: 'api_call', timestamp: Date.now() }) }] });
    await waitFor(async () => (await consumed()) === before + 1, { description: 'the scrape to count the consumed event', timeoutMs: 60_000, intervalMs: 200 });
  });

  it('answers /health up, from the dependencies a consumer uses, and nothing else', async () => {
    const health = await waitFor(
      async () => {
        const response = await fetch(`${base}/health`);
        return response.status === 200 ? { status: response.status, body: (await response.json()) as unknown } : undefined;
      },
      { description: '/health to answer up', timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(health).toEqual({ status: 200, body: { status: 'up' } });
    expect((await fetch(`${base}/v1/credit-products`)).status).toBe(404);
  });

  it('starts without a deprecation warning on its output', () => {
    // A warning an operator reads at every start is soon one nobody reads; Fastify's FSTDEP023
    // (the top-level disableRequestLogging option) was one.
    expect(tally!.lines.filter((line) => /Deprecation|\bDEP\d|FSTDEP/.test(line))).toEqual([]);
  });
});
