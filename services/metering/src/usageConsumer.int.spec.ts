import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPostgresEventStore, EventStoreUnavailableError, type EventStore } from '@tally/event-store';
import { stackConfig, waitFor } from '@tally/test-support';
import pg from 'pg';
import { consumedAtLeast as consumed, createMeteringTestKit, USAGE_TIME, usageRecord as usage, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';

jest.setTimeout(120_000);

async function committedOffsets(kit: MeteringTestKit, groupId = kit.groupId): Promise<string[]> {
  const [offsets] = await kit.admin.fetchOffsets({ groupId, topics: [kit.topic] });
  return offsets!.partitions.sort((a, b) => a.partition - b.partition).map((partition) => partition.offset);
}

describe('usage consumer on Kafka, the registry and PostgreSQL', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('turns Avro and JSON usage events into the balances a hand calculation gives', async () => {
    kit = await createMeteringTestKit({ partitions: 3 });
    await kit.createProduct({
      id: 'api-credits',
      name: 'API credits',
      consumption: [
        { event: 'api_call', credits: '0.1' },
        { event: 'api_call', credits: '0.05', where: { region: 'eu' } },
        { event: 'tokens', credits: '0.000033', perUnitOf: 'count' },
      ],
      lowBalanceThreshold: null,
    });
    await kit.createProduct({
      id: 'storage-credits',
      name: 'Storage credits',
      consumption: [
        { event: 'storage', credits: '0.333333', perUnitOf: 'gb', where: { class: 'hot' } },
        { event: 'storage', credits: '0.1', perUnitOf: 'gb', where: { class: 'cold' } },
        { event: 'api_call', credits: '0.001' },
      ],
      lowBalanceThreshold: null,
    });
    const aliceApi = await kit.openBalance('alice', 'api-credits', '100');
    const aliceStorage = await kit.openBalance('alice', 'storage-credits', '50');
    const bobApi = await kit.openBalance('bob', 'api-credits', '10');

    const events: [UsageRecord, 'avro' | 'json'][] = [
      [usage('e1', 'alice', 'api_call', { region: 'eu' }), 'avro'], // api 0.15, storage 0.001
      [usage('e2', 'alice', 'api_call', { region: 'us' }), 'json'], // api 0.1, storage 0.001
      [usage('e3', 'alice', 'storage', { class: 'hot', gb: 2.5 }), 'avro'], // storage 0.8333325 → 0.833333; api: no rule
      [usage('e4', 'bob', 'tokens', { count: 1234 }), 'json'], // api 0.040722
      [usage('e5', 'bob', 'tokens', { count: 7 }), 'avro'], // api 0.000231
      [usage('e6', 'carol', 'api_call'), 'avro'], // no balance
      [usage('e7', 'alice', 'storage', { class: 'cold', gb: '1.75' }), 'json'], // storage 0.175; api: no rule
      [usage('e8', 'bob', 'api_call', { region: 'eu' }), 'avro'], // api 0.15
    ];
    await kit.produce(events.map(([record, format]) => ({ key: record.customerId, value: kit[format](record) })));
    const consumer = await kit.startConsumer();
    await consumed(consumer, events.length);

    expect(await kit.balanceOf(aliceApi)).toBe('99.75'); // 100 − 0.15 − 0.1
    expect(await kit.balanceOf(aliceStorage)).toBe('48.989667'); // 50 − 0.001 − 0.001 − 0.833333 − 0.175
    expect(await kit.balanceOf(bobApi)).toBe('9.809047'); // 10 − 0.040722 − 0.000231 − 0.15
    expect(consumer.counters()).toMatchObject({
      consumed: 8,
      matched: 9,
      deadLettered: 0,
      appended: 9,
      skipped: 3,
      skippedByReason: { no_balance: 1, no_matching_rule: 2 },
    });
    const hot = (await kit.streamOf(aliceStorage)).find((event) => event.type === 'CreditConsumed' && (event.data.usage as { eventId: string }).eventId === 'e3');
    expect(hot?.data).toMatchObject({
      credits: '0.833333',
      source: 'usage',
      balanceAfter: '49.164667',
      usage: { eventId: 'e3', event: 'storage', quantity: '2.5', timestamp: new Date(USAGE_TIME).toISOString() },
    });
  });

  it('changes nothing for duplicates and redeliveries, however they come back', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1.25' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');
    const records = ['u1', 'u2', 'u3', 'u2', 'u4', 'u1'].map((id) => usage(id, 'alice', 'api_call'));
    await kit.produce(records.map((record, index) => ({ key: 'alice', value: index % 2 === 0 ? kit.avro(record) : kit.json(record) })));

    const first = await kit.startConsumer();
    await consumed(first, 6);
    expect(await kit.balanceOf(balanceId)).toBe('95'); // four distinct usage events × 1.25
    expect(first.counters().skippedByReason.already_applied).toBe(2);
    const revision = (await kit.streamOf(balanceId)).length;
    await first.stop();
    // stop() committed everything it processed and left the group (resetOffsets below needs it empty).
    const ends = await kit.admin.fetchTopicOffsets(kit.topic);
    // (An empty partition has nothing to commit: -1.)
    const expectedOffsets = ends.sort((a, b) => a.partition - b.partition).map((end) => (end.high === '0' ? '-1' : end.high));
    expect(await committedOffsets(kit)).toEqual(expectedOffsets);

    // A second group reads the whole topic again, with an empty balance cache.
    const replay = await kit.startConsumer({ groupId: `${kit.groupId}_replay` });
    await consumed(replay, 6);
    expect(replay.counters()).toMatchObject({ matched: 0, appended: 0, skippedByReason: { already_applied: 6 } });
    await replay.stop();

    // The first group restarts as if it had never committed.
    await kit.admin.resetOffsets({ groupId: kit.groupId, topic: kit.topic, earliest: true });
    const restarted = await kit.startConsumer();
    await consumed(restarted, 6);
    expect(restarted.counters()).toMatchObject({ matched: 0, appended: 0 });

    expect(await kit.balanceOf(balanceId)).toBe('95');
    expect(await kit.streamOf(balanceId)).toHaveLength(revision);
  });

  it('warns of a low balance exactly once per crossing, also when the API writes in between', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '2' }], lowBalanceThreshold: '5' });
    const balanceId = await kit.openBalance('alice', 'api', '10');
    const consumer = await kit.startConsumer();

    await kit.produce(['a1', 'a2', 'a3', 'a4'].map((id) => ({ key: 'alice', value: kit.json(usage(id, 'alice', 'api_call')) })));
    await consumed(consumer, 4); // 8, 6, 4 (warned), 2
    expect(await kit.balanceOf(balanceId)).toBe('2');

    // A top-up through the API: the consumer's cached revision is now stale.
    await kit.ledger.topUp(balanceId, { credits: 10_000_000n, reason: 'refill' }); // 12
    await kit.produce(['b1', 'b2', 'b3', 'b4'].map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
    await consumed(consumer, 8); // 10, 8, 6, 4 (warned again)

    expect(await kit.balanceOf(balanceId)).toBe('4');
    const types = (await kit.streamOf(balanceId)).map((event) => event.type);
    expect(types.filter((type) => type === 'LowBalanceWarned')).toHaveLength(2);
    expect(types.slice(2)).toEqual([
      'CreditConsumed',
      'CreditConsumed',
      'CreditConsumed',
      'LowBalanceWarned',
      'CreditConsumed',
      'CreditToppedUp',
      'CreditConsumed',
      'CreditConsumed',
      'CreditConsumed',
      'CreditConsumed',
      'LowBalanceWarned',
    ]);
    expect(consumer.counters().conflicts).toBeGreaterThanOrEqual(1);
  });

  it('dead-letters bad messages with their reasons while the good ones behind them pass', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({
      id: 'storage',
      name: 'Storage',
      consumption: [{ event: 'storage', credits: '0.5', perUnitOf: 'gb' }],
      lowBalanceThreshold: null,
    });
    const balanceId = await kit.openBalance('alice', 'storage', '20');
    const good = (id: string, gb: number) => kit.avro(usage(id, 'alice', 'storage', { gb }));
    const unknownSchema = Buffer.from(good('x', 1));
    unknownSchema.writeInt32BE(987_654_321, 1);
    // Its properties map claims 2^52 entries (the varint of 2^53, zig-zag) in the three bytes
    // left: avsc alone would loop on it for hours, holding the partition.
    const emptyProperties = kit.avro(usage('b1', 'alice', 'storage'));
    const mapBomb = Buffer.concat([emptyProperties.subarray(0, -1), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]), Buffer.from('abc')]);
    const bad: { value: Buffer; code: string; reason: RegExp }[] = [
      { value: Buffer.from([0xde, 0xad, 0xbe, 0xef]), code: 'undecodable_usage_event', reason: /neither Confluent-framed Avro/ },
      { value: unknownSchema, code: 'unknown_schema_id', reason: /987654321/ },
      { value: mapBomb, code: 'undecodable_usage_event', reason: /declares 4503599627370496 items, but at most 1 can follow/ },
      { value: Buffer.from(JSON.stringify({ id: 'm1', event: 'storage', timestamp: USAGE_TIME })), code: 'invalid_usage_event', reason: /customerId/ },
      { value: kit.json({ ...usage('w1', 'alice', 'storage'), timestamp: 'yesterday' as unknown as number }), code: 'invalid_usage_event', reason: /timestamp/ },
      { value: good('n1', -3), code: 'invalid_usage_event', reason: /negative/ },
    ];
    await kit.produce([
      { key: 'alice', value: good('g1', 4) },
      ...bad.map(({ value }, index) => ({ key: 'alice', value, headers: { 'x-origin': `bad-${index}` } })),
      { key: 'alice', value: good('g2', 6) },
    ]);
    const consumer = await kit.startConsumer();
    await consumed(consumer, 8);

    expect(await kit.balanceOf(balanceId)).toBe('15'); // 20 − 0.5 × 4 − 0.5 × 6
    expect(consumer.counters()).toMatchObject({ deadLettered: 6, matched: 2 });
    const letters = await kit.readTopic(kit.dlqTopic, 6);
    expect(letters).toHaveLength(6);
    letters.forEach((letter, index) => {
      const header = (name: string) => letter.headers?.[name]?.toString();
      expect(letter.key?.toString()).toBe('alice');
      expect(letter.value).toEqual(bad[index]!.value);
      expect(header('x-origin')).toBe(`bad-${index}`);
      expect(header(DEAD_LETTER_HEADERS.errorCode)).toBe(bad[index]!.code);
      expect(header(DEAD_LETTER_HEADERS.reason)).toMatch(bad[index]!.reason);
      expect(header(DEAD_LETTER_HEADERS.sourceTopic)).toBe(kit.topic);
      expect(header(DEAD_LETTER_HEADERS.sourcePartition)).toBe('0');
      expect(header(DEAD_LETTER_HEADERS.sourceOffset)).toBe(String(index + 1));
      expect(Number.isNaN(Date.parse(header(DEAD_LETTER_HEADERS.at) ?? ''))).toBe(false);
    });
  });

  it('refuses to start when its dead-letter topic does not exist', async () => {
    kit = await createMeteringTestKit();
    await expect(kit.startConsumer({ dlqTopic: `${kit.dlqTopic}_missing` })).rejects.toThrow(/_missing do not exist/);
  });

  it('retries a registry and a PostgreSQL outage without committing or skipping, and recovers by itself', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '0.5' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '10');

    // The registry behind a switch: 503 while "down", the real registry otherwise.
    let registryDown = true;
    let registryRefusals = 0;
    const proxy = createServer((request, response) => {
      if (registryDown) {
        registryRefusals += 1;
        response.statusCode = 503;
        response.end();
        return;
      }
      fetch(`${stackConfig.schemaRegistryUrl}${request.url ?? ''}`)
        .then(async (upstream) => {
          response.statusCode = upstream.status;
          response.setHeader('content-type', upstream.headers.get('content-type') ?? 'application/json');
          response.end(Buffer.from(await upstream.arrayBuffer()));
        })
        .catch(() => {
          response.statusCode = 502;
          response.end();
        });
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    // The event store behind a switch: appends fail as PostgreSQL being unreachable does.
    let storeDown = true;
    let appendRefusals = 0;
    const flakyStore: EventStore = {
      ...kit.eventStore,
      appendMany: async (requests) => {
        if (storeDown) {
          appendRefusals += 1;
          throw new EventStoreUnavailableError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
        }
        return kit.eventStore.appendMany(requests);
      },
    };

    try {
      await kit.produce(['o1', 'o2', 'o3', 'o4'].map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
      const consumer = await kit.startConsumer({
        registryUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        eventStore: flakyStore,
        maxBackoffMs: 200,
      });

      await waitFor(() => registryRefusals >= 3, { description: 'the decode step retried against the down registry' });
      registryDown = false;
      await waitFor(() => appendRefusals >= 3, { description: 'the append retried against the down event store' });
      // Nothing was committed, dead-lettered or skipped while the dependencies were down.
      expect(await committedOffsets(kit)).toEqual(['-1']);
      expect(consumer.counters()).toMatchObject({ consumed: 0, deadLettered: 0, skipped: 0 });

      storeDown = false;
      await consumed(consumer, 4);
      expect(await kit.balanceOf(balanceId)).toBe('8');
      expect(consumer.counters()).toMatchObject({ matched: 4, deadLettered: 0 });
      await waitFor(async () => (await committedOffsets(kit))[0] === '4', { description: 'offset 4 committed' });
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });
  it('waits out a read-only PostgreSQL (a failover) without dead-lettering or committing, and meters once it takes writes', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '0.5' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '10');

    // What a client still connected to a demoted primary meets: reads answer, writes fail 25006.
    const readOnlyPool = new pg.Pool({ connectionString: kit.db.connectionString, max: 2, options: `-c search_path=${kit.db.schema} -c default_transaction_read_only=on` });
    const readOnlyStore = createPostgresEventStore({ pool: readOnlyPool, logger: kit.logger });
    let readOnly = true;
    let refusals = 0;
    const failingOver: EventStore = new Proxy(kit.eventStore, {
      get(_, name: keyof EventStore) {
        const store = readOnly ? readOnlyStore : kit.eventStore;
        if (name !== 'appendMany') return (store[name] as (...args: unknown[]) => unknown).bind(store);
        return (async (requests) => {
          try {
            return await store.appendMany(requests);
          } catch (error) {
            if ((error as { code?: unknown }).code === '25006' || (error as { cause?: { code?: unknown } }).cause?.code === '25006') refusals += 1;
            throw error;
          }
        }) satisfies EventStore['appendMany'];
      },
    });

    try {
      await kit.produce(['r1', 'r2', 'r3', 'r4'].map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
      const consumer = await kit.startConsumer({ eventStore: failingOver, maxBackoffMs: 200 });

      await waitFor(() => refusals >= 3, { description: 'the append refused by the read-only node, three times' });
      expect(consumer.counters()).toMatchObject({ consumed: 0, deadLettered: 0, skipped: 0 });
      expect(await committedOffsets(kit)).toEqual(['-1']);

      readOnly = false;
      await consumed(consumer, 4);
      expect(await kit.balanceOf(balanceId)).toBe('8');
      expect(consumer.counters()).toMatchObject({ matched: 4, deadLettered: 0 });
      expect((await kit.admin.fetchTopicOffsets(kit.dlqTopic)).map(({ high }) => high)).toEqual(['0']);
    } finally {
      await readOnlyStore.close();
      await readOnlyPool.end();
    }
  });
});
