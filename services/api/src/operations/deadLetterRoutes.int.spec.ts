import { createHash } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService } from '@tally/ledger';
import { readTopicToEnds } from '@tally/kafka';
import {
  createDeadLetterLog,
  createDeadLetterReader,
  createDeadLetterRedrives,
  createUsageEventDecoder,
  DEAD_LETTER_HEADERS,
  REDRIVE_LEASE_NAME,
  REDRIVEN_FROM_HEADER,
} from '@tally/metering';
import { createMetricsRegistry } from '@tally/metrics';
import { tryAcquireAdvisoryLease } from '@tally/postgres';
import { createBalanceReadModel, createRedisClient } from '@tally/projections';
import { createTestKafka, createTestSchema, createTestTopic, deleteTopics, stackConfig, startTcpProxyFor, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Admin, KafkaMessage, Producer } from 'kafkajs';
import pino from 'pino';
import { buildApp } from '../buildApp';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 'admin-key-0123456789abcdef';
const WRITER = 'writer-key-0123456789abcdef';
const admin = { authorization: `Bearer ${ADMIN}` };
// Computed apart from the code under test: the first 12 hex digits of the key's SHA-256.
const BY_ADMIN = { keyId: createHash('sha256').update(ADMIN).digest('hex').slice(0, 12), keyName: 'ops' };

/** POST /v1/dead-letters/redrives and its reads, against the real broker, PostgreSQL and Redis. */
describe('/v1/dead-letters/redrives', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let kafkaAdmin: Admin;
  let producer: Producer;
  let app: FastifyInstance;
  let usageTopic: string;
  let dlqTopic: string;
  const keyPrefix = uniqueName('redrive_routes');

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'redrive_routes' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    redis = new Redis(stackConfig.redisUrl);
    const kafka = createTestKafka('redrive-routes-test');
    kafkaAdmin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([kafkaAdmin.connect(), producer.connect()]);
    [usageTopic, dlqTopic] = await Promise.all([createTestTopic(kafkaAdmin, { prefix: 'redrive_usage' }), createTestTopic(kafkaAdmin, { prefix: 'redrive_dlq' })]);
    app = await appOn(redis);
  });

  /** The API with its dead letters and send-backs in `client`'s Redis, under `prefix`, its letters on `dlq`, sent back to `usage`. */
  async function appOn(client: Redis, prefix = keyPrefix, dlq = dlqTopic, usage = usageTopic): Promise<FastifyInstance> {
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    const deadLetters = createDeadLetterLog({ redis: client, keyPrefix: prefix });
    return buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [{ key: ADMIN, scopes: ['admin'], name: 'ops' }, { key: WRITER, scopes: ['write'] }],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      deadLetters,
      redrives: createDeadLetterRedrives({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-routes') },
        dlqTopic: dlq,
        usageTopic: usage,
        redis: client,
        keyPrefix: prefix,
        deadLetters,
        pool: db.pool,
        logger,
      }),
      deadLetterReader: createDeadLetterReader({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('dead-letter-read') },
        dlqTopic: dlq,
        decoder: createUsageEventDecoder({ registryUrl: stackConfig.schemaRegistryUrl }),
      }),
    });
  }

  afterAll(async () => {
    await app?.close();
    await deleteTopics(kafkaAdmin, [usageTopic, dlqTopic].filter(Boolean)).catch(() => undefined);
    await Promise.all([kafkaAdmin?.disconnect(), producer?.disconnect()]);
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  const post = (payload: object, headers = admin) => app.inject({ method: 'POST', url: '/v1/dead-letters/redrives', headers, payload });
  const finished = (url: string) =>
    waitFor(
      async () => {
        const run = (await app.inject({ method: 'GET', url, headers: admin })).json();
        return run.status === 'running' ? undefined : run;
      },
      { description: `${url} to finish`, timeoutMs: 60_000 },
    );
  const usageEnd = async () => (await kafkaAdmin.fetchTopicOffsets(usageTopic))[0]!.high;

  it('refuses a request that does not name the letters, or names them twice, with a message', async () => {
    for (const payload of [
      {},
      { dryRun: true },
      { all: false },
      { all: true, errorCodes: ['balance_not_opened'] },
      { errorCodes: [] },
      { all: true, code: 'x' },
      { all: true, since: 'yesterday' },
      // Date-times the schema's format admits and Date refuses: a leap second, an offset without minutes.
      { all: true, since: '2026-06-30T23:59:60Z' },
      { all: true, since: '2026-03-01T00:00:00+05' },
      { all: true, letters: ['0:1'] },
      { errorCodes: ['balance_not_opened'], letters: ['0:1'] },
      { letters: [] },
      { letters: ['0:01'] },
      { letters: ['0-1'] },
      { letters: ['0:1', '0:1'] },
    ]) {
      const response = await post(payload);
      expect({ payload, status: response.statusCode }).toEqual({ payload, status: 400 });
      expect(response.json().message).toEqual(expect.any(String));
    }
    expect((await post({ all: true }, { authorization: `Bearer ${WRITER}` })).statusCode).toBe(403);
    // No refusal kept the one-run-at-a-time lease: a run starts and ends after them.
    const after = await post({ all: true, dryRun: true });
    expect(after.statusCode).toBe(202);
    expect(await finished(after.headers.location as string)).toMatchObject({ status: 'succeeded' });
    const unknown = await app.inject({ method: 'GET', url: '/v1/dead-letters/redrives/00000000-0000-0000-0000-000000000000', headers: admin });
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'redrive_not_found']);
  });

  it('lists the newest dead letters, narrowed to an error code, a key, or both', async () => {
    const prefix = `${keyPrefix}_filter`;
    const filtering = await appOn(redis, prefix);
    try {
      const letter = (offset: number, key: string, errorCode: string) => ({
        partition: 0,
        offset: String(offset),
        deadLetteredAt: new Date(Date.UTC(2026, 2, 1, 12, 0, offset)).toISOString(),
        errorCode,
        reason: null,
        causeCode: null,
        sourceTopic: usageTopic,
        sourcePartition: 0,
        sourceOffset: String(offset),
        key,
        valuePreview: null,
        customerId: key,
        usageEventId: `e-${offset % 2}`,
      });
      await createDeadLetterLog({ redis, keyPrefix: prefix }).record([
        letter(0, 'dave', 'balance_not_opened'),
        letter(1, 'dave', 'invalid_usage_event'),
        letter(2, 'erin', 'balance_not_opened'),
        letter(3, 'erin', 'invalid_usage_event'),
      ]);
      const offsets = async (query: string) => {
        const response = await filtering.inject({ method: 'GET', url: `/v1/dead-letters${query}`, headers: admin });
        expect(response.statusCode).toBe(200);
        return response.json().items.map((item: { offset: string }) => item.offset);
      };
      expect(await offsets('')).toEqual(['3', '2', '1', '0']);
      expect(await offsets('?errorCode=balance_not_opened')).toEqual(['2', '0']);
      expect(await offsets('?key=dave')).toEqual(['1', '0']);
      expect(await offsets('?key=dave&errorCode=invalid_usage_event')).toEqual(['1']);
      expect(await offsets('?errorCode=invalid_usage_event&limit=1')).toEqual(['3']);
      expect(await offsets('?key=nobody')).toEqual([]);
      // By the usage event the letters name (a lookup of that event lists them too).
      expect(await offsets('?usageEventId=e-1')).toEqual(['3', '1']);
      expect(await offsets('?usageEventId=e-0&key=erin')).toEqual(['2']);
      for (const query of ['?errorCode=not%20a%20code', '?key=', '?customer=dave', '?usageEventId=', `?usageEventId=${'e'.repeat(257)}`]) {
        const refused = await filtering.inject({ method: 'GET', url: `/v1/dead-letters${query}`, headers: admin });
        expect({ query, status: refused.statusCode }).toEqual({ query, status: 400 });
        expect(refused.json().message).toEqual(expect.any(String));
      }
    } finally {
      await filtering.close();
    }
  });

  it('reads one letter whole from the dead-letter topic; 404 where there is none, 400 for what is not a place', async () => {
    // A topic of its own: the send-back tests count the letters on theirs.
    const [topic, usage] = await Promise.all([createTestTopic(kafkaAdmin, { prefix: 'letters_dlq' }), createTestTopic(kafkaAdmin, { prefix: 'letters_usage' })]);
    const reading = await appOn(redis, `${keyPrefix}_letters`, topic, usage);
    // A producer of its own too: kafkajs's refreshes the metadata of every topic it sent to, and
    // the shared one would fail on this topic once it is deleted.
    const letterProducer = createTestKafka('letters-test').producer();
    await letterProducer.connect();
    try {
      const at = '2026-03-01T12:00:00.000Z';
      const value = '{"id":"u1","customerId":"dave","event":"api_call","timestamp":1772366400000,"properties":{"tokens":12}}';
      await letterProducer.send({
        topic,
        messages: [
          { key: 'dave', value: 'first', headers: { [DEAD_LETTER_HEADERS.errorCode]: 'invalid_usage_event' } },
          {
            key: 'dave',
            value,
            // `absent` without a value (kafkajs's types leave null out): answered null, not "" nor "null".
            headers: { traceparent: 't1', absent: null as unknown as string, [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.reason]: 'no balance', [DEAD_LETTER_HEADERS.sourceTopic]: usage, [DEAD_LETTER_HEADERS.sourceOffset]: '41', [DEAD_LETTER_HEADERS.at]: at },
          },
        ],
      });
      const read = await reading.inject({ method: 'GET', url: '/v1/dead-letters/0/1', headers: admin });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual({
        partition: 0,
        offset: '1',
        deadLetteredAt: at,
        errorCode: 'balance_not_opened',
        reason: 'no balance',
        causeCode: null,
        sourceTopic: usage,
        sourcePartition: null,
        sourceOffset: '41',
        key: 'dave',
        valuePreview: value,
        customerId: null,
        usageEventId: null,
        storedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        headers: [
          { name: 'traceparent', value: 't1', encoding: 'utf8' },
          { name: 'absent', value: null, encoding: 'utf8' },
          { name: DEAD_LETTER_HEADERS.errorCode, value: 'balance_not_opened', encoding: 'utf8' },
          { name: DEAD_LETTER_HEADERS.reason, value: 'no balance', encoding: 'utf8' },
          { name: DEAD_LETTER_HEADERS.sourceTopic, value: usage, encoding: 'utf8' },
          { name: DEAD_LETTER_HEADERS.sourceOffset, value: '41', encoding: 'utf8' },
          { name: DEAD_LETTER_HEADERS.at, value: at, encoding: 'utf8' },
        ],
        value: {
          bytes: Buffer.byteLength(value),
          base64: Buffer.from(value).toString('base64'),
          format: 'json',
          schemaId: null,
          record: JSON.parse(value),
          unreadable: null,
        },
      });
      // Past the end, and not a place at all; and only for admin keys.
      const missing = await reading.inject({ method: 'GET', url: '/v1/dead-letters/0/2', headers: admin });
      expect([missing.statusCode, missing.json().error, missing.json().message]).toEqual([404, 'dead_letter_not_found', `no dead letter at partition 0, offset 2 of ${topic}: the partition ends before it (next offset 2)`]);
      for (const url of ['/v1/dead-letters/0/-1', '/v1/dead-letters/0/01', '/v1/dead-letters/x/0', '/v1/dead-letters/0/99999999999999999999']) {
        const refused = await reading.inject({ method: 'GET', url, headers: admin });
        expect({ url, status: refused.statusCode }).toEqual({ url, status: 400 });
      }
      expect((await reading.inject({ method: 'GET', url: '/v1/dead-letters/0/1', headers: { authorization: `Bearer ${WRITER}` } })).statusCode).toBe(403);

      // Sent back by its place alone: the other letter, of the same source, stays.
      // With a pick where there is no letter (past the partition's end), named in the result.
      const sent = await reading.inject({ method: 'POST', url: '/v1/dead-letters/redrives', headers: admin, payload: { letters: ['0:1', '0:9'] } });
      expect(sent.statusCode).toBe(202);
      expect(sent.json()).toMatchObject({ status: 'running', errorCodes: 'all', letters: ['0:1', '0:9'], requestedBy: BY_ADMIN });
      const run = await waitFor(
        async () => {
          const read = (await reading.inject({ method: 'GET', url: sent.headers.location as string, headers: admin })).json();
          return read.status === 'running' ? undefined : read;
        },
        { description: 'the send-back of one letter to finish', timeoutMs: 60_000 },
      );
      // Only the picked letter was read: a pick reads the span of its places, not the topic.
      expect(run).toMatchObject({
        status: 'succeeded',
        letters: ['0:1', '0:9'],
        result: { read: 1, republished: 1, republishedByErrorCode: { balance_not_opened: 1 }, skipped: { not_selected: 0 }, notFound: ['0:9'] },
      });
      const back: KafkaMessage[] = [];
      await readTopicToEnds({ kafka: createTestKafka('letters-back'), topic: usage, purpose: 'letters-test', eachBatch: async (_partition, messages) => void back.push(...messages) });
      expect(back.map((message) => [message.key?.toString(), message.value?.toString(), message.headers?.[REDRIVEN_FROM_HEADER]?.toString()])).toEqual([['dave', value, '0:1']]);
      // Listed with the letters it picked.
      expect((await reading.inject({ method: 'GET', url: '/v1/dead-letters/redrives', headers: admin })).json().items.map((item: { letters: unknown }) => item.letters)).toEqual([['0:1', '0:9']]);
    } finally {
      await reading.close();
      await letterProducer.disconnect();
      await deleteTopics(kafkaAdmin, [topic, usage]).catch(() => undefined);
    }
  });

  it('answers 503 with Retry-After while Redis does not answer, and again once it does', async () => {
    const { proxy, url } = await startTcpProxyFor(stackConfig.redisUrl);
    const client = createRedisClient({ url, commandTimeoutMs: 500 });
    // A prefix of its own: the other test lists exactly its own runs.
    const outage = await appOn(client, `${keyPrefix}_outage`);
    try {
      proxy.down();
      for (const url of ['/v1/dead-letters', '/v1/dead-letters/redrives', '/v1/dead-letters/redrives/00000000-0000-0000-0000-000000000000']) {
        const response = await outage.inject({ method: 'GET', url, headers: admin });
        expect({ url, status: response.statusCode, error: response.json().error, retryAfter: response.headers['retry-after'] }).toEqual({
          url,
          status: 503,
          error: 'dead_letters_unavailable',
          retryAfter: '1',
        });
      }
      const refused = await outage.inject({ method: 'POST', url: '/v1/dead-letters/redrives', headers: admin, payload: { all: true, dryRun: true } });
      expect([refused.statusCode, refused.json().error]).toEqual([503, 'dead_letters_unavailable']);
      const notCancelled = await outage.inject({ method: 'POST', url: '/v1/dead-letters/redrives/00000000-0000-0000-0000-000000000000/cancel', headers: admin });
      expect([notCancelled.statusCode, notCancelled.json().error]).toEqual([503, 'dead_letters_unavailable']);
      proxy.resume();
      // Nothing was started: the lease taken for the refused run was given back.
      await waitFor(async () => (await outage.inject({ method: 'GET', url: '/v1/dead-letters/redrives', headers: admin })).statusCode === 200, {
        description: 'the send-backs readable again',
      });
      const started = await outage.inject({ method: 'POST', url: '/v1/dead-letters/redrives', headers: admin, payload: { all: true, dryRun: true } });
      expect(started.statusCode).toBe(202);
      const run = await waitFor(
        async () => {
          const read = (await outage.inject({ method: 'GET', url: started.headers.location as string, headers: admin })).json();
          return read.status === 'running' ? undefined : read;
        },
        { description: 'the send-back after the outage to finish', timeoutMs: 60_000 },
      );
      expect(run).toMatchObject({ status: 'succeeded' });
    } finally {
      await outage.close();
      client.disconnect();
      await proxy.close();
    }
  });

  it('counts, then sends back in the background, answering where to follow it; one run at a time', async () => {
    const at = new Date().toISOString();
    await producer.send({
      topic: dlqTopic,
      messages: [
        { key: 'dave', value: '{"id":"u1"}', headers: { traceparent: 't1', [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: usageTopic, [DEAD_LETTER_HEADERS.at]: at } },
        { key: 'dave', value: 'not json', headers: { [DEAD_LETTER_HEADERS.errorCode]: 'invalid_usage_event', [DEAD_LETTER_HEADERS.sourceTopic]: usageTopic, [DEAD_LETTER_HEADERS.at]: at } },
      ],
    });
    const dry = await post({ all: true, dryRun: true });
    expect(dry.statusCode).toBe(202);
    expect(dry.json()).toMatchObject({ status: 'running', dryRun: true, errorCodes: 'all', requestedBy: BY_ADMIN });
    expect(dry.headers.location).toBe(`/v1/dead-letters/redrives/${dry.json().id}`);
    expect(await finished(dry.headers.location as string)).toMatchObject({
      status: 'succeeded',
      result: { read: 2, republished: 2, republishedByErrorCode: { balance_not_opened: 1, invalid_usage_event: 1 } },
    });
    expect(await usageEnd()).toBe('0');

    // `tally redrive` holds the lease: the API refuses to start another.
    const cli = await tryAcquireAdvisoryLease({ pool: db.anotherPool(1), name: REDRIVE_LEASE_NAME });
    const refused = await post({ errorCodes: ['balance_not_opened'] });
    expect([refused.statusCode, refused.json().error]).toEqual([409, 'redrive_running']);
    await cli!.release();

    // The log as the API processes fill it from the topic: the letters at offsets 0 and 1.
    const letter = (offset: string, errorCode: string) => ({ partition: 0, offset, deadLetteredAt: at, errorCode, reason: null, causeCode: null, sourceTopic: usageTopic, sourcePartition: 0, sourceOffset: offset, key: 'dave', valuePreview: null, customerId: null, usageEventId: null });
    await createDeadLetterLog({ redis, keyPrefix }).record([letter('0', 'balance_not_opened'), letter('1', 'invalid_usage_event')]);
    const sent = await post({ errorCodes: ['balance_not_opened'], since: '2020-01-01T00:00:00Z' });
    expect(sent.statusCode).toBe(202);
    expect(await finished(sent.headers.location as string)).toMatchObject({
      status: 'succeeded',
      since: '2020-01-01T00:00:00.000Z',
      result: { read: 2, republished: 1, skipped: { not_selected: 1 } },
      error: null,
    });
    expect(await usageEnd()).toBe('1');
    // Still listed, the one sent back said to be.
    const listed = (await app.inject({ method: 'GET', url: '/v1/dead-letters', headers: admin })).json();
    const byOffset = Object.fromEntries(listed.items.map((item: { offset: string; sentBackAt: string | null }) => [item.offset, item.sentBackAt]));
    expect(byOffset['1']).toBeNull();
    expect(Date.parse(byOffset['0'])).toBeGreaterThanOrEqual(Date.parse(sent.json().startedAt));
    const list = (await app.inject({ method: 'GET', url: '/v1/dead-letters/redrives', headers: admin })).json();
    expect(list.items.slice(0, 2).map((run: { id: string }) => run.id)).toEqual([sent.json().id, dry.json().id]);

    // A run that has ended cannot be stopped; one that runs can, by an admin only.
    const cancel = (id: string, headers = admin) => app.inject({ method: 'POST', url: `/v1/dead-letters/redrives/${id}/cancel`, headers });
    const ended = await cancel(sent.json().id);
    expect([ended.statusCode, ended.json().error]).toEqual([409, 'redrive_not_running']);
    expect(ended.json().message).toEqual(expect.any(String));
    const unknown = await cancel('00000000-0000-0000-0000-000000000000');
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'redrive_not_found']);
    const running = await post({ all: true });
    expect((await cancel(running.json().id, { authorization: `Bearer ${WRITER}` })).statusCode).toBe(403);
    // This process runs it: the answer is the run stopped.
    const stopped = await cancel(running.json().id);
    expect(stopped.statusCode).toBe(202);
    expect(stopped.json()).toMatchObject({ id: running.json().id, status: 'cancelled', cancelRequestedBy: BY_ADMIN, error: null });
    expect(stopped.json().finishedAt).toEqual(expect.any(String));
    const read = (await app.inject({ method: 'GET', url: running.headers.location as string, headers: admin })).json();
    expect(read).toEqual(stopped.json());
  });
});
