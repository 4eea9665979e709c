import { createCatalogCache, createPostgresCatalogStore, type CatalogCache, type CatalogStore } from '@tally/catalog';
import { creditProductFromDto, formatCredits, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService, createUsageBalanceWrites, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import { createDeadLetterLog, createDeadLetterRecorder, createUsageConsumer, createUsagePublisher, type UsageConsumer, type UsagePublisher } from '@tally/metering';
import { createBalanceReadModel } from '@tally/projections';
import {
  createTestKafka,
  createTestSchema,
  createTestTopic,
  deleteTopics,
  stackConfig,
  uniqueName,
  waitFor,
  type TestSchema,
} from '@tally/test-support';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Admin, KafkaMessage } from 'kafkajs';
import pino from 'pino';
import { buildApp, type ApiDeps } from '../buildApp';
import { createMetricsRegistry } from '@tally/metrics';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'ingest-key-0123456789abcdef';
const auth = { authorization: `Bearer ${KEY}` };
const T0 = '2026-03-01T12:00:00Z';

/** The ledger's reads of the store by id, counted: a usage lookup is one, its refunds included. */
let storeReads = 0;
const countingReads = (store: EventStore): EventStore => ({
  ...store,
  readAppendTraces: (markers, eventIds) => ((storeReads += 1), store.readAppendTraces(markers, eventIds)),
  readEventsById: (eventIds) => ((storeReads += 1), store.readEventsById(eventIds)),
});

describe('POST /v1/usage-events, through Kafka and the metering consumer', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let catalogCache: CatalogCache;
  let ledger: LedgerService;
  let redis: Redis;
  let admin: Admin;
  let topic: string;
  let dlqTopic: string;
  let publisher: UsagePublisher;
  let consumer: UsageConsumer;
  let app: FastifyInstance;
  const groupId = uniqueName('ingest');

  const apiDeps = (): ApiDeps => ({
    catalog,
    balanceRegistry,
    ledger,
    balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('ingest') }),
    eventStore,
    apiKeys: [KEY],
    logger,
    health: async () => ({}),
    metrics: createMetricsRegistry(),
    purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
    usagePublisher: publisher,
  });

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'ingest' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore: countingReads(eventStore), catalog, balanceRegistry, logger });
    catalogCache = createCatalogCache({ store: catalog, logger, refreshIntervalMs: 200 });
    await catalogCache.start();
    redis = new Redis(stackConfig.redisUrl);
    admin = createTestKafka(uniqueName('ingest-admin')).admin();
    await admin.connect();
    topic = await createTestTopic(admin, { prefix: 'ingest', partitions: 3 });
    dlqTopic = await createTestTopic(admin, { prefix: 'ingest_dlq', partitions: 1 });
    await catalog.createProduct(
      creditProductFromDto({
        id: 'api',
        name: 'API',
        description: '',
        bundles: [],
        consumption: [
          { event: 'api_call', credits: '1' },
          { event: 'tokens_used', credits: '0.001', perUnitOf: 'tokens' },
        ],
        lowBalanceThreshold: null,
      }),
    );
    publisher = createUsagePublisher({ kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('ingest') }, topic, logger });
    consumer = createUsageConsumer({
      kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('ingest') },
      groupId,
      topic,
      dlqTopic,
      registryUrl: stackConfig.schemaRegistryUrl,
      eventStore,
      balanceWrites: createUsageBalanceWrites({ eventStore, logger }),
      balanceRegistry,
      catalogCache,
      logger,
      sessionTimeoutMs: 10_000,
    });
    await consumer.start();
    app = await buildApp(apiDeps());
  });

  afterAll(async () => {
    await app?.close();
    await consumer?.stop();
    await publisher?.stop();
    catalogCache?.stop();
    await deleteTopics(admin, [topic, dlqTopic]).catch(() => undefined);
    await admin?.deleteGroups([groupId]).catch(() => undefined);
    await admin?.disconnect();
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  const balanceOf = async (balanceId: string) => formatCredits((await ledger.getBalance(balanceId)).balance.balance);
  /** Each test meters customers of its own, at 100 credits, so its figures hold whatever ran before it. */
  const openCustomer = async (name: string) => {
    const customerId = uniqueName(name);
    const { balance } = await ledger.openBalance({ customerId, productId: 'api', startingBalance: parseCredits('100') });
    return { customerId, balanceId: balance.balanceId };
  };
  const post = (payload: unknown, contentType = 'application/json', headers: Record<string, string> = auth) =>
    app.inject({ method: 'POST', url: '/v1/usage-events', headers: { ...headers, 'content-type': contentType }, payload: JSON.stringify(payload) });

  it('publishes the valid events, lists the refused ones, and the balance changes once per event id', async () => {
    const [acme, globex] = await Promise.all([openCustomer('acme'), openCustomer('globex')]);
    const before = consumer.counters().consumed;
    const events = [
      { id: 'h1', customerId: acme.customerId, event: 'api_call', timestamp: T0 },
      { id: 'h2', customerId: acme.customerId, event: 'api_call', timestamp: 'yesterday' },
      { id: 'h3', customerId: acme.customerId, event: 'tokens_used', timestamp: T0, properties: { tokens: 1500 } },
      { specversion: '1.0', id: 'c1', source: '/checkout', type: 'api_call', subject: globex.customerId, time: T0 },
      { customerId: acme.customerId, event: 'api_call', timestamp: T0 },
    ];
    const response = await post({ events });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({
      accepted: 3,
      refused: [
        { index: 1, id: 'h2', error: 'invalid_usage_event', message: 'timestamp must be epoch milliseconds or an ISO-8601 string' },
        { index: 4, error: 'invalid_usage_event', message: 'id is missing or not a string' },
      ],
    });
    await waitFor(() => consumer.counters().consumed >= before + 3, { description: '3 events metered', timeoutMs: 60_000 });
    expect(await balanceOf(acme.balanceId)).toBe('97.5');
    expect(await balanceOf(globex.balanceId)).toBe('99');

    // The client did not hear the answer and sends the same request again: accepted, charged once.
    expect((await post({ events })).statusCode).toBe(202);
    await waitFor(() => consumer.counters().consumed >= before + 6, { description: 'the retried events consumed', timeoutMs: 60_000 });
    expect(await balanceOf(acme.balanceId)).toBe('97.5');
    expect(await balanceOf(globex.balanceId)).toBe('99');
  });

  it('publishes a request larger than a Kafka message may be (2 MB, 1,000 events), and refuses alone an event larger than the topic takes', async () => {
    const { customerId } = await openCustomer('big');
    const before = consumer.counters().consumed;
    // About 2 KB each: twice the topic's default max.message.bytes in all, as the route allows 5 MiB.
    const events: Array<Record<string, unknown>> = Array.from({ length: 1000 }, (_, i) => ({ id: `big-${i}`, customerId, event: 'api_call', timestamp: T0, properties: { note: 'x'.repeat(2_000) } }));
    // One event alone over the topic's 1 MiB: no retry can publish it.
    events[500] = { ...events[500], properties: { note: 'x'.repeat(1_100_000) } };
    const response = await post({ events });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({
      accepted: 999,
      refused: [{ index: 500, id: 'big-500', error: 'usage_event_too_large', message: expect.stringMatching(/larger than the usage topic takes/) }],
    });
    await waitFor(() => consumer.counters().consumed >= before + 999, { description: '999 events consumed', timeoutMs: 60_000 });
  });

  it('takes a NUL in a property, as the consumer meters it: properties are never stored', async () => {
    const { customerId, balanceId } = await openCustomer('nul');
    const before = consumer.counters().consumed;
    const events = [
      { id: 'n1', customerId, event: 'api_call', timestamp: T0 },
      { id: 'n2', customerId, event: 'api_call', timestamp: T0, properties: { note: 'a\u0000b' } },
    ];
    const response = await post({ events });
    expect([response.statusCode, response.json()]).toEqual([202, { accepted: 2, refused: [] }]);
    await waitFor(() => consumer.counters().consumed >= before + 2, { description: 'both events metered', timeoutMs: 60_000 });
    expect(await balanceOf(balanceId)).toBe('98');
  });

  it('refuses an event with a lone surrogate, or a NUL in an id, alone, and publishes the others', async () => {
    const { customerId, balanceId } = await openCustomer('lone');
    const before = consumer.counters().consumed;
    const events = [
      { id: 'l1', customerId, event: 'api_call', timestamp: T0 },
      { id: 'l2', customerId, event: 'api_call', timestamp: T0, properties: { note: '\ud800' } },
      { id: 'l3\u0000', customerId, event: 'api_call', timestamp: T0 },
    ];
    const response = await post({ events });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({
      accepted: 1,
      refused: [
        { index: 1, id: 'l2', error: 'invalid_usage_event', message: 'property note is not well-formed Unicode (it holds a lone surrogate)' },
        { index: 2, id: 'l3\u0000', error: 'invalid_usage_event', message: 'id contains the character U+0000' },
      ],
    });
    await waitFor(() => consumer.counters().consumed >= before + 1, { description: 'the valid event metered', timeoutMs: 60_000 });
    expect(await balanceOf(balanceId)).toBe('99');
    // Only the body is judged per event: the query is judged whole, as on every route.
    const query = await app.inject({ method: 'POST', url: '/v1/usage-events?x=%00', headers: auth, payload: { events: [events[0]] } });
    expect([query.statusCode, query.json().error]).toEqual([400, 'validation_failed']);
  });

  it('refuses alone an event nested deeper than 64 levels (a 20 KB body of brackets), and publishes the others, in every media type', async () => {
    const { customerId, balanceId } = await openCustomer('deep');
    const before = consumer.counters().consumed;
    // JSON.parse reads any depth; JSON.stringify of such an event overflowed the stack: a 500 for the whole request.
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const native = (id: string, extra = '') => `{"id":"${id}","customerId":"${customerId}","event":"api_call","timestamp":"${T0}"${extra}}`;
    const cloudEvent = (id: string, extra = '') => `{"specversion":"1.0","id":"${id}","source":"/deep","type":"api_call","subject":"${customerId}","time":"${T0}"${extra}}`;
    const send = (payload: string, contentType: string) => app.inject({ method: 'POST', url: '/v1/usage-events', headers: { ...auth, 'content-type': contentType }, payload });
    const tooDeep = (index: number, id: string) => ({ index, id, error: 'invalid_usage_event', message: expect.stringMatching(/nests objects and arrays deeper than 64 levels/) });

    const mixed = await send(`{"events":[${native('d1')},${native('d2', `,"properties":{"blob":${deep}}`)},${native('d3', `,"extra":${deep}`)},${cloudEvent('d4', `,"data":{"blob":${deep}}`)}]}`, 'application/json');
    expect([mixed.statusCode, mixed.json()]).toEqual([202, { accepted: 1, refused: [tooDeep(1, 'd2'), tooDeep(2, 'd3'), tooDeep(3, 'd4')] }]);
    const batch = await send(`[${cloudEvent('d5')},${cloudEvent('d6', `,"ext":${deep}`)}]`, 'application/cloudevents-batch+json');
    expect([batch.statusCode, batch.json()]).toEqual([202, { accepted: 1, refused: [tooDeep(1, 'd6')] }]);
    const single = await send(cloudEvent('d7', `,"data":{"blob":${deep}}`), 'application/cloudevents+json');
    expect([single.statusCode, single.json()]).toEqual([400, { error: 'invalid_usage_events', message: 'all 1 event(s) were refused', refused: [tooDeep(0, 'd7')] }]);

    await waitFor(() => consumer.counters().consumed >= before + 2, { description: 'the 2 valid events metered', timeoutMs: 60_000 });
    expect(await balanceOf(balanceId)).toBe('98');
  });

  it('refuses a body that is not valid UTF-8, as the consumer dead-letters such bytes, rather than reading it with U+FFFD', async () => {
    const { customerId } = await openCustomer('utf8');
    // evt-<FF> and evt-<FE>, read with replacement characters, would be one event evt-\ufffd, charged once.
    const body = Buffer.concat([
      Buffer.from(`{"events":[{"id":"evt-`),
      Buffer.from([0xff]),
      Buffer.from(`","customerId":"${customerId}","event":"api_call","timestamp":"${T0}"},{"id":"evt-`),
      Buffer.from([0xfe]),
      Buffer.from(`","customerId":"${customerId}","event":"api_call","timestamp":"${T0}"}]}`),
    ]);
    for (const contentType of ['application/json', 'application/cloudevents-batch+json', 'application/cloudevents+json']) {
      const response = await app.inject({ method: 'POST', url: '/v1/usage-events', headers: { ...auth, 'content-type': contentType }, payload: body });
      expect([contentType, response.statusCode, response.json()]).toEqual([contentType, 400, { error: 'invalid_json', message: expect.stringMatching(/not valid UTF-8/) }]);
    }
  });

  it('answers what a usage event charged: its entries per balance once metered, none for one metered free or not metered', async () => {
    const { customerId, balanceId } = await openCustomer('lookup');
    // A threshold the charge crosses: the charge's entries are the charge and the warning it caused.
    await ledger.changeSettings(balanceId, { lowBalanceThreshold: parseCredits('99.5') });
    // A second product of the test's own that charges the same event: the event writes on both balances.
    const searchProduct = uniqueName('search');
    await catalog.createProduct(
      creditProductFromDto({ id: searchProduct, name: 'Search', description: '', bundles: [], consumption: [{ event: 'api_call', credits: '0.25' }], lowBalanceThreshold: null }),
    );
    await catalogCache.refresh();
    const { balance: search } = await ledger.openBalance({ customerId, productId: searchProduct, startingBalance: parseCredits('10') });
    const order = (await balanceRegistry.listCustomerBalances(customerId)).map((balance) => balance.id);
    expect([...order].sort()).toEqual([balanceId, search.balanceId].sort());
    const before = consumer.counters().consumed;
    const events = [
      // A `:` in the id: parts of the ids the lookup derives are encoded, as metering's are.
      { id: 'charged:1', customerId, event: 'api_call', timestamp: T0 },
      // No rule for it: metered, charging nothing.
      { id: 'free-1', customerId, event: 'page_view', timestamp: T0 },
      // A CloudEvent: its usage id is ce:<length of source>:<source>:<id>, with a `/` to encode in the path.
      { specversion: '1.0', id: 'c-7', source: '/checkout', type: 'api_call', subject: customerId, time: T0 },
    ];
    expect((await post({ events })).statusCode).toBe(202);
    await waitFor(() => consumer.counters().consumed >= before + 3, { description: 'the three events consumed', timeoutMs: 60_000 });
    const lookup = (eventId: string) =>
      app.inject({ method: 'GET', url: `/v1/customers/${encodeURIComponent(customerId)}/usage-events/${encodeURIComponent(eventId)}`, headers: auth });

    const charged = await lookup('charged:1');
    expect(charged.statusCode).toBe(200);
    const answer = charged.json();
    expect(answer).toMatchObject({ customerId, eventId: 'charged:1', metered: true });
    // Both balances, in the customer's order of them.
    expect(answer.balances.map((written: { balanceId: string }) => written.balanceId)).toEqual(order);
    const onApi = answer.balances.find((written: { balanceId: string }) => written.balanceId === balanceId);
    const onSearch = answer.balances.find((written: { balanceId: string }) => written.balanceId === search.balanceId);
    expect(onApi.productId).toBe('api');
    expect(onSearch).toMatchObject({ productId: searchProduct, entries: [{ type: 'CreditConsumed', credits: '0.25', balanceAfter: '9.75', usageEventId: 'charged:1' }] });
    expect(onSearch.entries).toHaveLength(1);
    const entries = onApi.entries as Array<Record<string, unknown>>;
    expect(entries.map((entry) => entry.type)).toEqual(['CreditConsumed', 'LowBalanceWarned']);
    expect(entries[0]).toMatchObject({ source: 'usage', credits: '1', balanceAfter: '99', usageEventId: 'charged:1', usageEvent: 'api_call', refundedBy: null });
    // The very entries of the balance's ledger.
    const ledgerPage = (await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger`, headers: auth })).json();
    const ids = entries.map((entry) => entry.id);
    const inLedger = (ledgerPage.items as Array<Record<string, unknown>>).filter((item) => ids.includes(item.id)).reverse();
    expect(entries).toEqual(inLedger);

    // Refunded, the charge says by which entry, as the ledger does.
    const refund = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/refunds`, headers: auth, payload: { entryId: entries[0]!.id } });
    expect(refund.statusCode).toBe(201);
    const readsBefore = storeReads;
    const refunded = (await lookup('charged:1')).json().balances.find((written: { balanceId: string }) => written.balanceId === balanceId);
    expect(refunded.entries[0].refundedBy).toBe(refund.json().entry.id);
    // The entries and their refunds in one read of the store.
    expect(storeReads - readsBefore).toBe(1);

    expect((await lookup('free-1')).json()).toEqual({ customerId, eventId: 'free-1', metered: true, balances: [] });
    const cloudEvent = (await lookup('ce:9:/checkout:c-7')).json();
    expect(cloudEvent).toMatchObject({ eventId: 'ce:9:/checkout:c-7', metered: true });
    expect(cloudEvent.balances.map((written: { entries: Array<{ usageEventId: string }> }) => written.entries[0]!.usageEventId)).toEqual([
      'ce:9:/checkout:c-7',
      'ce:9:/checkout:c-7',
    ]);
    expect((await lookup('never-sent')).json()).toEqual({ customerId, eventId: 'never-sent', metered: false, balances: [] });
    // Another customer's event of the same id is not this one's.
    expect((await app.inject({ method: 'GET', url: `/v1/customers/${uniqueName('other')}/usage-events/charged%3A1`, headers: auth })).json()).toMatchObject({
      metered: false,
      balances: [],
    });
    // Several at once, in the order asked: each the answer its own lookup gives.
    const asked = ['never-sent', 'charged:1', 'free-1', 'ce:9:/checkout:c-7'];
    const lookups = (body: unknown) => app.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/usage-event-lookups`, headers: auth, payload: body as object });
    const batch = await lookups({ ids: asked });
    expect(batch.statusCode).toBe(200);
    expect(batch.json().items).toEqual(await Promise.all(asked.map(async (id) => (await lookup(id)).json())));
    for (const refused of [{ ids: [] }, { ids: ['a', 'a'] }, { ids: Array.from({ length: 101 }, (_, index) => `u-${index}`) }, { ids: [''] }, {}]) {
      expect((await lookups(refused)).statusCode).toBe(400);
    }
    const tooLong = await lookup('x'.repeat(257));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().message).toMatch(/eventId/);
    expect((await app.inject({ method: 'GET', url: `/v1/customers/${customerId}/usage-events/free-1` })).statusCode).toBe(401);
  });

  it("says a usage event was dead-lettered and why, from the letters that name it, and keeps them listed once it is sent again fixed and metered", async () => {
    const { customerId, balanceId } = await openCustomer('dead');
    const deadLetters = createDeadLetterLog({ redis, keyPrefix: uniqueName('usage_dlq') });
    const recorder = createDeadLetterRecorder({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('usage_dlq') },
      topic: dlqTopic,
      groupId: uniqueName('usage_dlq'),
      log: deadLetters,
      logger,
    });
    const producer = createTestKafka(uniqueName('usage_dlq')).producer();
    await Promise.all([recorder.start(), producer.connect()]);
    const withLog = await buildApp({ ...apiDeps(), deadLetters });
    try {
      const lookup = async (eventId: string) =>
        (await withLog.inject({ method: 'GET', url: `/v1/customers/${encodeURIComponent(customerId)}/usage-events/${encodeURIComponent(eventId)}`, headers: auth })).json();
      // Straight onto the usage topic, as a producer without the API's checks would send them.
      const bad = { id: 'bad-1', customerId, event: 'api_call', timestamp: 'yesterday' };
      const badCloudEvent = { specversion: '1.0', id: 'c-9', source: '/checkout', type: 'api_call', subject: customerId };
      await producer.send({
        topic,
        messages: [
          { key: customerId, value: JSON.stringify(bad) },
          { key: customerId, value: JSON.stringify(badCloudEvent) },
          { key: customerId, value: '{"id": "lost-1", "customerId": ' },
        ],
      });
      const dead = await waitFor(
        async () => {
          const found = await lookup('bad-1');
          return found.deadLetters?.length === 1 ? found : undefined;
        },
        { description: "bad-1's dead letter recorded", timeoutMs: 60_000 },
      );
      expect(dead).toMatchObject({ customerId, eventId: 'bad-1', metered: false, balances: [] });
      expect(dead.deadLetters[0]).toEqual({
        partition: 0,
        offset: expect.stringMatching(/^[0-9]+$/),
        deadLetteredAt: expect.any(String),
        errorCode: 'invalid_usage_event',
        reason: 'timestamp must be epoch milliseconds or an ISO-8601 string',
        sentBackAt: null,
      });
      // The CloudEvent without its time is named as metering would have named it.
      const cloudEvent = await waitFor(
        async () => {
          const found = await lookup('ce:9:/checkout:c-9');
          return found.deadLetters?.length === 1 ? found : undefined;
        },
        { description: "the CloudEvent's dead letter recorded", timeoutMs: 60_000 },
      );
      expect(cloudEvent.deadLetters[0]).toMatchObject({ errorCode: 'invalid_usage_event', reason: expect.stringMatching(/time/) });
      // Bytes that cannot be read name no usage event: its letter is the customer's, found by key.
      const lost = await lookup('lost-1');
      expect(lost).toEqual({ customerId, eventId: 'lost-1', metered: false, balances: [], deadLetters: [] });
      const byKey = await withLog.inject({ method: 'GET', url: `/v1/dead-letters?key=${encodeURIComponent(customerId)}`, headers: auth });
      // Newest first, however many of them were dead-lettered at one instant.
      expect(byKey.json().items.map((letter: { usageEventId: string | null }) => letter.usageEventId)).toEqual([null, 'ce:9:/checkout:c-9', 'bad-1']);

      // The producer fixes it and sends it again: metered once, its letter still listed.
      await producer.send({ topic, messages: [{ key: customerId, value: JSON.stringify({ ...bad, timestamp: T0 }) }] });
      const fixed = await waitFor(
        async () => {
          const found = await lookup('bad-1');
          return found.metered === true ? found : undefined;
        },
        { description: 'bad-1 metered once fixed', timeoutMs: 60_000 },
      );
      expect(fixed.balances).toMatchObject([{ balanceId, entries: [{ type: 'CreditConsumed', credits: '1', usageEventId: 'bad-1' }] }]);
      expect(fixed.deadLetters).toEqual(dead.deadLetters);
      // Many at once: each with its own letters.
      const batch = await withLog.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/usage-event-lookups`, headers: auth, payload: { ids: ['lost-1', 'bad-1'] } });
      expect(batch.json().items).toEqual([lost, fixed]);
    } finally {
      await withLog.close();
      await Promise.all([recorder.stop(), producer.disconnect()]);
    }
  });

  it('takes CloudEvents as a JSON batch or one structured event, and puts every event on the usage topic keyed by its customer', async () => {
    const [acme, globex] = await Promise.all([openCustomer('acme'), openCustomer('globex')]);
    const before = consumer.counters().consumed;
    const batch = [
      { specversion: '1.0', id: 'c2', source: '/checkout', type: 'api_call', subject: globex.customerId, time: T0, data: {} },
      { specversion: '1.0', id: 'c3', source: '/checkout', type: 'tokens_used', subject: acme.customerId, time: T0, data: { tokens: 500 } },
      { id: 'not-a-cloud-event', customerId: acme.customerId, event: 'api_call', timestamp: T0 },
    ];
    const response = await post(batch, 'application/cloudevents-batch+json');
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ accepted: 2, refused: [{ index: 2, id: 'not-a-cloud-event', error: 'validation_failed' }] });
    await waitFor(() => consumer.counters().consumed >= before + 2, { description: 'the batch metered', timeoutMs: 60_000 });
    expect(await balanceOf(acme.balanceId)).toBe('99.5');
    expect(await balanceOf(globex.balanceId)).toBe('99');

    // One event in the HTTP binding's structured mode.
    const single = await post({ specversion: '1.0', id: 'c4', source: '/checkout', type: 'api_call', subject: globex.customerId, time: T0 }, 'application/cloudevents+json');
    expect(single.statusCode).toBe(202);
    expect(single.json()).toEqual({ accepted: 1, refused: [] });
    await waitFor(() => consumer.counters().consumed >= before + 3, { description: 'the single event metered', timeoutMs: 60_000 });
    expect(await balanceOf(globex.balanceId)).toBe('98');

    const reader = createTestKafka(uniqueName('ingest-reader')).consumer({ groupId: uniqueName('ingest-reader') });
    const messages: KafkaMessage[] = [];
    await reader.connect();
    await reader.subscribe({ topic, fromBeginning: true });
    await reader.run({ eachMessage: async ({ message }) => void messages.push(message) });
    const readBack = (id: string) => messages.find((message) => message.value!.toString().includes(`"${id}"`));
    await waitFor(() => ['c2', 'c3', 'c4'].every((id) => readBack(id) !== undefined), { description: 'the published events read back', timeoutMs: 30_000 });
    await reader.disconnect();
    const c3 = readBack('c3')!;
    expect(c3.key!.toString()).toBe(acme.customerId);
    expect(c3.headers!['content-type']!.toString()).toBe('application/cloudevents+json');
  });

  it('refuses a request whose events are all invalid, too many events, and a missing key', async () => {
    const allBad = await post({ events: [{ id: 'x' }] });
    expect(allBad.statusCode).toBe(400);
    expect(allBad.json()).toMatchObject({ error: 'invalid_usage_events', refused: [{ index: 0, id: 'x' }] });
    // A native id a CloudEvent's could be (source "a", id "b"): refused, with why.
    const takenPrefix = await post({ events: [{ id: 'ce:1:a:b', customerId: 'acme', event: 'api_call', timestamp: T0 }] });
    expect(takenPrefix.statusCode).toBe(400);
    expect(takenPrefix.json()).toMatchObject({ refused: [{ index: 0, id: 'ce:1:a:b', error: 'invalid_usage_event', message: expect.stringContaining('must not start with "ce:"') }] });

    const tooMany = Array.from({ length: 1001 }, (_, index) => ({ id: `m${index}`, customerId: 'acme', event: 'api_call', timestamp: T0 }));
    const refusedBatch = await post({ events: tooMany });
    expect(refusedBatch.statusCode).toBe(400);
    expect(refusedBatch.json().message).toMatch(/1000/);
    expect((await post({ events: [] })).statusCode).toBe(400);

    // No body and no content type: no parser or schema ran, and the handler says what to send.
    const empty = await app.inject({ method: 'POST', url: '/v1/usage-events', headers: auth });
    expect([empty.statusCode, empty.json().message]).toEqual([400, expect.stringContaining('no body')]);
    // Media types in any case are the same media types (RFC 9110).
    const plainInBatch = await post([{ id: 'z', customerId: 'acme', event: 'api_call', timestamp: T0 }], 'APPLICATION/CLOUDEVENTS-BATCH+JSON');
    expect(plainInBatch.statusCode).toBe(400);
    expect(plainInBatch.json()).toMatchObject({ refused: [{ index: 0, id: 'z', message: 'application/cloudevents-batch+json takes CloudEvents only (specversion missing)' }] });
    const emptyCloudEvent = await post({}, 'Application/CloudEvents+JSON; charset=utf-8');
    expect(emptyCloudEvent.statusCode).toBe(400);
    expect(emptyCloudEvent.json()).toMatchObject({ error: 'invalid_usage_events', refused: [{ index: 0 }] });

    expect((await post({ events: [{ id: 'y' }] }, 'application/json', {})).statusCode).toBe(401);
  });

  it('answers 503 with Retry-After when Kafka does not take the events in time', async () => {
    // Nothing listens on port 1: every connection is refused, as while the brokers are down.
    const away = createUsagePublisher({ kafka: { brokers: ['127.0.0.1:1'], clientId: uniqueName('away') }, topic, logger, timeoutMs: 1000 });
    const offline = await buildApp({ ...apiDeps(), usagePublisher: away });
    const response = await offline.inject({
      method: 'POST',
      url: '/v1/usage-events',
      headers: auth,
      payload: { events: [{ id: 'o1', customerId: 'acme', event: 'api_call', timestamp: T0 }] },
    });
    await offline.close();
    await away.stop();
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    // Kafka's own words (the brokers' addresses) are for the log, not the client.
    expect(response.json()).toEqual({ error: 'usage_not_published', message: 'usage events were not published to Kafka; retry the request' });
  });

  it('declares the ingest key scope on the route and documents it in OpenAPI', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    const operation = spec.paths['/v1/usage-events'].post;
    expect(Object.keys(operation.requestBody.content)).toEqual(['application/json', 'application/cloudevents-batch+json', 'application/cloudevents+json']);
    expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['202', '400']));
    const scopes: unknown[] = [];
    const probe = await buildApp(apiDeps());
    probe.addHook('onRequest', async (request) => void scopes.push(request.routeOptions.config.scope));
    await probe.inject({ method: 'POST', url: '/v1/usage-events', headers: auth, payload: { events: [{ id: 'z' }] } });
    await probe.close();
    expect(scopes).toEqual(['ingest']);
  });
});
