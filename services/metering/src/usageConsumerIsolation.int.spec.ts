import { createHash } from 'node:crypto';
import type { EventStore } from '@tally/event-store';
import { waitFor } from '@tally/test-support';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { consumedAtLeast as consumed, createMeteringTestKit, usageRecord as usage, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';

jest.setTimeout(180_000);

const header = (message: { headers?: Record<string, unknown> }, name: string): string | undefined =>
  (message.headers?.[name] as Buffer | undefined)?.toString();

/** Issue 10 §2: no message and no deterministic failure stalls a partition. */
describe('usage consumer isolates what cannot be metered', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('dead-letters strings PostgreSQL and Avro cannot store, in every field, and meters the rest', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balances = await Promise.all(['c0', 'c1', 'c2'].map((customer) => kit.openBalance(customer, 'api', '100')));
    const lone = '\ud800';
    // JSON.stringify writes a lone surrogate as the escape "\ud800": valid JSON, not valid Unicode.
    const hostile: UsageRecord[] = [
      usage(`id${lone}`, 'c0', 'api_call'),
      { ...usage('x2', 'c0', 'api_call'), customerId: `c0${lone}` },
      usage('x3', 'c1', `api_call${lone}`),
      usage('x4', 'c1', 'api_call', { [`k${'\udc00'}`]: 1 }),
      usage('x5', 'c2', 'api_call', { note: `v${lone}` }),
    ];
    const avroId = kit.avro(usage('zzbadzz', 'c2', 'api_call'));
    avroId.set([0x7a, 0xff, 0xfe, 0x61, 0x64, 0x7a, 0x7a], avroId.indexOf('zzbadzz'));
    const good = Array.from({ length: 30 }, (_, i) => usage(`g${i}`, `c${i % 3}`, 'api_call'));
    await kit.produce([
      ...good.slice(0, 15).map((record) => ({ key: record.customerId, value: kit.json(record) })),
      ...hostile.map((record) => ({ key: 'hostile', value: kit.json(record) })),
      { key: 'hostile', value: avroId },
      ...good.slice(15).map((record) => ({ key: record.customerId, value: kit.avro(record) })),
    ]);
    const consumer = await kit.startConsumer();
    await consumed(consumer, good.length + hostile.length + 1);
    expect(await Promise.all(balances.map((id) => kit.balanceOf(id)))).toEqual(['90', '90', '90']);
    const letters = await kit.readTopic(kit.dlqTopic, hostile.length + 1);
    const reasons = letters.map((letter) => [header(letter, DEAD_LETTER_HEADERS.errorCode), header(letter, DEAD_LETTER_HEADERS.reason)]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ['invalid_usage_event', 'id is not well-formed Unicode (it holds a lone surrogate)'],
        ['invalid_usage_event', 'customerId is not well-formed Unicode (it holds a lone surrogate)'],
        ['invalid_usage_event', 'event is not well-formed Unicode (it holds a lone surrogate)'],
        ['invalid_usage_event', 'a property name is not well-formed Unicode (it holds a lone surrogate)'],
        ['invalid_usage_event', 'property note is not well-formed Unicode (it holds a lone surrogate)'],
        ['undecodable_usage_event', expect.stringMatching(/is not valid UTF-8/)],
      ]),
    );
  });

  it('splits a chunk whose append fails deterministically down to the message behind it, and meters the rest', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');
    // PostgreSQL refusing what one event would store, as it refused lone surrogates (22P02) before
    // they were caught up front: the real store, failing for appends that hold the poison event.
    let refusals = 0;
    const poisoned: EventStore = {
      ...kit.eventStore,
      async appendMany(requests, options) {
        if (requests.some((request) => request.events.some((event) => JSON.stringify(event.data).includes('"poison"')))) {
          refusals += 1;
          throw Object.assign(new Error('invalid input syntax for type json'), { code: '22P02', severity: 'ERROR' });
        }
        return kit.eventStore.appendMany(requests, options);
      },
    };
    const records = Array.from({ length: 40 }, (_, i) => usage(i === 23 ? 'poison' : `u${i}`, 'alice', 'api_call'));
    await kit.produce(records.map((record) => ({ key: 'alice', value: kit.avro(record) })));
    const consumer = await kit.startConsumer({ eventStore: poisoned });
    await consumed(consumer, 40);

    expect(await kit.balanceOf(balanceId)).toBe('61');
    expect(consumer.counters()).toMatchObject({ matched: 39, deadLettered: 1 });
    // Bisection, not one try per message: about log2(40) failed appends.
    expect(refusals).toBeLessThanOrEqual(8);
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(header(letter!, DEAD_LETTER_HEADERS.sourceOffset)).toBe('23');
    expect(header(letter!, DEAD_LETTER_HEADERS.errorCode)).toBe('unmeterable_usage');
    expect(header(letter!, DEAD_LETTER_HEADERS.causeCode)).toBe('22P02');
    expect(header(letter!, DEAD_LETTER_HEADERS.reason)).toMatch(/22P02.*invalid input syntax/);
    // Read again from its bytes, it names its usage event: a lookup of `poison` finds this letter.
    expect([header(letter!, DEAD_LETTER_HEADERS.customerId), header(letter!, DEAD_LETTER_HEADERS.usageEventId)]).toEqual(['alice', 'poison']);
    // Fails the test if the group's offset never passes the poison (waitFor throws at its deadline).
    await waitFor(async () => (await kit.admin.fetchOffsets({ groupId: kit.groupId, topics: [kit.topic] }))[0]!.partitions[0]!.offset === '40', {
      description: 'offsets committed past the poison',
      timeoutMs: 10_000,
    });
  });

  it('dead-letters the usage a stored product that fails validation cannot price, and meters the rest', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.createProduct({ id: 'legacy', name: 'Legacy', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const alice = await kit.openBalance('alice', 'api', '10');
    await kit.openBalance('olga', 'legacy', '10');
    // An older version (or a hand edit) stored a rule today's validation refuses.
    await kit.db.pool.query(`UPDATE credit_products SET consumption = '[{"event":"api_call","credits":"-1"}]' WHERE id = 'legacy'`);
    await kit.catalogCache.refresh();
    const uncached = { ...kit.catalogCache, getProduct: (id: string) => kit.catalogStore.getProduct(id) };
    await kit.produce([
      { key: 'alice', value: kit.avro(usage('a1', 'alice', 'api_call')) },
      { key: 'olga', value: kit.avro(usage('o1', 'olga', 'api_call')) },
      { key: 'alice', value: kit.avro(usage('a2', 'alice', 'api_call')) },
    ]);
    const consumer = await kit.startConsumer({ catalogCache: uncached });
    await consumed(consumer, 3);
    expect(await kit.balanceOf(alice)).toBe('8');
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(header(letter!, DEAD_LETTER_HEADERS.errorCode)).toBe('stored_product_invalid');
    // The catalog's one wording (storedProductInvalid), not a second one of the consumer's.
    expect(header(letter!, DEAD_LETTER_HEADERS.reason)).toMatch(/^credit product legacy as stored fails validation: .+; a change of that field repairs it$/);
    expect([header(letter!, DEAD_LETTER_HEADERS.customerId), header(letter!, DEAD_LETTER_HEADERS.usageEventId)]).toEqual(['olga', 'o1']);
    // The catalog listing leaves it out rather than failing for every product.
    expect((await kit.catalogStore.listProducts()).map((product) => product.id)).toEqual(['api']);
  });

  it('dead-letters a message whose key and headers are near 1 MB, cutting them to fit the topic', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const alice = await kit.openBalance('alice', 'api', '10');
    const key = 'k'.repeat(600_000);
    const bulk = Buffer.alloc(446_000, 'h');
    await kit.produce([
      // With the dead-letter headers added, this message whole would exceed the topic's 1 MB limit.
      // (An explicit partition: kafkajs's key partitioner is quadratic in the key's length.)
      { key, value: Buffer.from('not a usage event'), headers: { bulk, small: 'kept' }, partition: 0 },
      { key: 'alice', value: kit.avro(usage('a1', 'alice', 'api_call')) },
    ]);
    const consumer = await kit.startConsumer();
    await consumed(consumer, 2);
    expect(await kit.balanceOf(alice)).toBe('9');
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(header(letter!, DEAD_LETTER_HEADERS.keyTruncatedFrom)).toBe('600000');
    expect(header(letter!, DEAD_LETTER_HEADERS.keySha256)).toBe(createHash('sha256').update(key).digest('hex'));
    expect(header(letter!, DEAD_LETTER_HEADERS.headersDropped)).toBe('1');
    expect(header(letter!, 'small')).toBe('kept');
    expect(letter!.headers).not.toHaveProperty('bulk');
    expect(header(letter!, DEAD_LETTER_HEADERS.errorCode)).toBe('undecodable_usage_event');
  });
});
