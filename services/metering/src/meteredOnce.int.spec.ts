import { balanceStreamId, creditProductFromDto, parseCredits, type CreditProductDto } from '@tally/domain';
import { StoredWithoutMarkerError, type EventStore } from '@tally/event-store';
import { commandIds, createUsageBalanceWrites, ledgerEventId, meteredUsageMarker } from '@tally/ledger';
import { capturedLog, waitFor } from '@tally/test-support';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { consumedAtLeast as consumed, createMeteringTestKit, USAGE_TIME, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(180_000);

const product = (dto: Omit<CreditProductDto, 'description' | 'bundles' | 'lowBalanceThreshold'>) =>
  creditProductFromDto({ description: '', bundles: [], lowBalanceThreshold: null, ...dto });

/**
 * Issue 10 §1: a usage event is metered once, at its first delivery, with the catalog and the
 * balances of that moment; no later delivery changes anything, whatever changed in between.
 */
describe('a usage event is metered at its first delivery only', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('is not re-rated on redelivery after a rule is added, a price changes and a balance is opened', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({
      id: 'api',
      name: 'API',
      consumption: [
        { event: 'api_call', credits: '1' },
        { event: 'ping', credits: '0' },
      ],
      lowBalanceThreshold: null,
    });
    await kit.createProduct({ id: 'storage', name: 'Storage', consumption: [{ event: 'stored', credits: '3' }], lowBalanceThreshold: null });
    const aliceApi = await kit.openBalance('alice', 'api', '100');

    // Charged (alice api_call), zero cost (alice ping), matched by no rule (alice tokens), no
    // balance at all (bob), and one id delivered twice.
    const before = [
      usage('p1', 'alice', 'ping'),
      usage('a1', 'alice', 'api_call'),
      usage('a2', 'alice', 'api_call'),
      usage('t1', 'alice', 'tokens', { count: 1000 }),
      usage('b1', 'bob', 'api_call'),
      usage('b2', 'bob', 'stored'),
      usage('a1', 'alice', 'api_call'),
    ];
    await kit.produce(before.map((record, index) => ({ key: record.customerId, value: index % 2 === 0 ? kit.avro(record) : kit.json(record) })));
    const first = await kit.startConsumer();
    await consumed(first, before.length);
    expect(await kit.balanceOf(aliceApi)).toBe('98');
    expect(first.counters()).toMatchObject({ matched: 2, skippedByReason: { already_applied: 1 } });
    await first.stop();
    // Every usage event of the first delivery is recorded, whatever it charged.
    const markers = ['alice:p1', 'alice:a1', 'alice:a2', 'alice:t1', 'bob:b1', 'bob:b2'];
    expect(await kit.eventStore.readMarkers(markers.map((pair) => meteredUsageMarker(...(pair.split(':') as [string, string]))))).toEqual(
      new Set(markers.map((pair) => meteredUsageMarker(...(pair.split(':') as [string, string])))),
    );

    // Everything that would price the old usage differently now: a rule that matches the
    // unmatched tokens, new prices for api_call and ping, balances opened for bob, and a second
    // balance of alice whose product now has a rule for her api_call.
    await kit.catalogStore.updateProduct(
      product({
        id: 'api',
        name: 'API',
        consumption: [
          { event: 'api_call', credits: '2' },
          { event: 'ping', credits: '4' },
          { event: 'tokens', credits: '0.01', perUnitOf: 'count' },
        ],
      }),
    );
    await kit.catalogStore.updateProduct(product({ id: 'storage', name: 'Storage', consumption: [{ event: 'stored', credits: '3' }, { event: 'api_call', credits: '5' }] }));
    await kit.catalogCache.refresh();
    const bobApi = await kit.openBalance('bob', 'api', '50');
    const bobStorage = await kit.openBalance('bob', 'storage', '50');
    const aliceStorage = await kit.openBalance('alice', 'storage', '50');
    const balances = async () =>
      Object.fromEntries(await Promise.all(Object.entries({ aliceApi, bobApi, bobStorage, aliceStorage }).map(async ([name, id]) => [name, await kit.balanceOf(id)])));
    const unchanged = { aliceApi: '98', bobApi: '50', bobStorage: '50', aliceStorage: '50' };
    expect(await balances()).toEqual(unchanged);

    // Redelivery 1: the group's offsets reset to the earliest.
    await kit.admin.resetOffsets({ groupId: kit.groupId, topic: kit.topic, earliest: true });
    const reset = await kit.startConsumer();
    await consumed(reset, before.length);
    expect(reset.counters()).toMatchObject({ matched: 0, appended: 0, skippedByReason: { already_applied: before.length } });
    expect(await balances()).toEqual(unchanged);
    await reset.stop();

    // Redelivery 2: a new group reads the topic from the start, with an empty balance cache.
    const fresh = await kit.startConsumer({ groupId: `${kit.groupId}_new` });
    await consumed(fresh, before.length);
    expect(fresh.counters()).toMatchObject({ matched: 0, appended: 0, skippedByReason: { already_applied: before.length } });
    expect(await balances()).toEqual(unchanged);

    // New usage is priced by today's rules, on today's balances.
    const after = [usage('a3', 'alice', 'api_call'), usage('t2', 'alice', 'tokens', { count: 1000 }), usage('b3', 'bob', 'api_call'), usage('b4', 'bob', 'stored')];
    await kit.produce(after.map((record) => ({ key: record.customerId, value: kit.avro(record) })));
    await consumed(fresh, before.length + after.length);
    expect(await balances()).toEqual({
      aliceApi: '86', // 98 - 2 (a3) - 10 (t2: 1000 × 0.01)
      aliceStorage: '45', // 50 - 5 (a3)
      bobApi: '48', // 50 - 2 (b3)
      bobStorage: '42', // 50 - 5 (b3) - 3 (b4)
    });
  });

  it('waits for a balance whose opening is in progress instead of recording "nothing to charge"', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    // The API registers a balance before it appends its opening; here the opening has not come yet.
    await kit.registryStore.registerBalance({ id: 'carol-api', customerId: 'carol', productId: 'api' });
    const { logger, lines } = capturedLog('warn');
    await kit.produce([{ key: 'carol', value: kit.avro(usage('c1', 'carol', 'api_call')) }]);
    const consumer = await kit.startConsumer({ logger, balanceOpenWaitMs: 120_000, maxBackoffMs: 200 });
    await waitFor(() => lines.filter((line) => line.includes('waiting for credit balance(s) carol-api to be opened')).length >= 2, {
      description: 'the consumer waiting for the opening, and looking again',
      timeoutMs: 60_000,
    });
    expect(consumer.counters().consumed).toBe(0);
    expect(await kit.eventStore.readMarkers([meteredUsageMarker('carol', 'c1')])).toEqual(new Set());

    // The opening completes (the API's next request for the pair does it): the usage is charged.
    const balanceId = await kit.openBalance('carol', 'api', '10');
    expect(balanceId).toBe('carol-api');
    await consumed(consumer, 1);
    expect(await kit.balanceOf(balanceId)).toBe('9');
    expect(consumer.counters()).toMatchObject({ matched: 1, deadLettered: 0 });
  });

  it('dead-letters, unrecorded, usage whose balance stays unopened past the wait, and meters the rest', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    const erin = await kit.openBalance('erin', 'api', '10');
    await kit.produce([
      { key: 'erin', value: kit.avro(usage('e1', 'erin', 'api_call')) },
      { key: 'dave', value: kit.avro(usage('d1', 'dave', 'api_call')) },
      { key: 'erin', value: kit.avro(usage('e2', 'erin', 'api_call')) },
    ]);
    const consumer = await kit.startConsumer({ balanceOpenWaitMs: 1000, maxBackoffMs: 200 });
    await consumed(consumer, 3);
    expect(await kit.balanceOf(erin)).toBe('8');
    const [dead] = await kit.readTopic(kit.dlqTopic, 1);
    expect(dead!.headers![DEAD_LETTER_HEADERS.errorCode]!.toString()).toBe('balance_not_opened');
    expect(dead!.headers![DEAD_LETTER_HEADERS.sourceOffset]!.toString()).toBe('1');
    expect(await kit.eventStore.readMarkers([meteredUsageMarker('dave', 'd1')])).toEqual(new Set());

    // Replayed once the balance is open, it is metered.
    const dave = await kit.openBalance('dave', 'api', '10');
    await kit.produce([{ key: 'dave', value: dead!.value }]);
    await consumed(consumer, 4);
    expect(await kit.balanceOf(dave)).toBe('9');
  });
  it('waits for an unopened balance once, not once per chunk: later chunks wait only what is left of it', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const erin = await kit.openBalance('erin', 'api', '10');
    const { logger, lines } = capturedLog('warn');
    const consumer = await kit.startConsumer({ logger, batchSize: 1, balanceOpenWaitMs: 2000, maxBackoffMs: 200 });
    // The consumer has joined (the wait runs from the registration, which comes after).
    await kit.produce([{ key: 'erin', value: kit.avro(usage('e1', 'erin', 'api_call')) }]);
    await consumed(consumer, 1);
    // Registered, never opened (an opening refused after its registration, or a crash in between).
    const registered = Date.now();
    await kit.registryStore.registerBalance({ id: 'frank-api', customerId: 'frank', productId: 'api' });
    // One send, chunks of one: three chunks in a row against the same unopened balance.
    await kit.produce(['f1', 'f2', 'f3'].map((id) => ({ key: 'frank', value: kit.avro(usage(id, 'frank', 'api_call')) })));
    await consumed(consumer, 4);
    expect(consumer.counters()).toMatchObject({ deadLettered: 3, matched: 1 });
    expect(await kit.balanceOf(erin)).toBe('9');

    // What happened, in order: the partition waited at the first (held, then looked again: kafkajs
    // fetches a partition resumed alone only after its fetch wait, so there may be one look only),
    // which was dead-lettered once the wait since the registration was over; the next two were
    // dead-lettered without one more wait.
    const logged = lines.map((line) => JSON.parse(line) as { msg: string; offset?: string; time: number });
    const events = logged.flatMap((line) =>
      line.msg.startsWith('waiting for credit balance(s) frank-api') ? [`waited at ${line.offset}`] : line.msg === 'usage message dead-lettered' ? [`dead-lettered ${line.offset}`] : [],
    );
    const firstLetter = events.indexOf('dead-lettered 1');
    expect(events.slice(0, firstLetter).length).toBeGreaterThanOrEqual(1);
    expect(events.slice(0, firstLetter).every((event) => event === 'waited at 1')).toBe(true);
    expect(events.slice(firstLetter)).toEqual(['dead-lettered 1', 'dead-lettered 2', 'dead-lettered 3']);
    const letteredAt = logged.find((line) => line.msg === 'usage message dead-lettered' && line.offset === '1')!.time;
    expect(letteredAt - registered).toBeGreaterThanOrEqual(2000 - 50);
  });

  /**
   * The event store the consumer is given, counting its reads of earlier runs and its marked
   * appends refused for what they found stored: the consumer's round trips are what is asserted.
   */
  function countingStore(inner: EventStore) {
    const counts = { earlierRunReads: 0, refusedStored: 0, refusedMarked: 0 };
    const store = new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'readAppendTraces') {
          return (...args: Parameters<EventStore['readAppendTraces']>) => {
            counts.earlierRunReads += 1;
            return target.readAppendTraces(...args);
          };
        }
        if (property === 'appendMany') {
          return async (...args: Parameters<EventStore['appendMany']>) => {
            try {
              return await target.appendMany(...args);
            } catch (error) {
              if (error instanceof StoredWithoutMarkerError) counts.refusedStored += 1;
              else if ((error as { code?: unknown }).code === 'marker_already_recorded') counts.refusedMarked += 1;
              throw error;
            }
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    });
    return { store, counts };
  }

  it('appends without reading earlier runs once a partition finds none, and still meters a redelivered usage id once', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const balanceId = await kit.openBalance('alice', 'api', '100');
    const { store, counts } = countingStore(kit.eventStore);
    const consumer = await kit.startConsumer({ eventStore: store, batchSize: 2 });

    // Four chunks of new usage, sent one at a time: each a batch of its own, after the one before.
    for (const [index, ids] of [['u1', 'u2'], ['u3', 'u4'], ['u5', 'u6'], ['u7', 'u8']].entries()) {
      await kit.produce(ids.map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
      await consumed(consumer, 2 * (index + 1));
    }
    // Only the partition's first chunk read its earlier runs; the others left that to the append.
    expect(counts.earlierRunReads).toBe(1);
    expect(await kit.balanceOf(balanceId)).toBe('92');

    // A redelivery of u3 beside new usage: the unread append finds u3's marker, writes nothing,
    // and the chunk is read and decided again.
    await kit.produce(['u3', 'u9'].map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
    await consumed(consumer, 10);
    expect(counts).toEqual({ earlierRunReads: 2, refusedStored: 0, refusedMarked: 1 });
    expect(await kit.balanceOf(balanceId)).toBe('91');
    // Found by the append, not lost to another writer: no conflict counted.
    expect(consumer.counters()).toMatchObject({ matched: 9, conflicts: 0, skippedByReason: { already_applied: 1 } });
    // And the partition reads first again, until a chunk finds nothing metered before.
    await kit.produce(['u10', 'u11'].map((id) => ({ key: 'alice', value: kit.avro(usage(id, 'alice', 'api_call')) })));
    await consumed(consumer, 12);
    expect(counts.earlierRunReads).toBe(3);
    expect(await kit.balanceOf(balanceId)).toBe('89');
  });

  it('does not charge usage that a consumer from before markers charged on a balance opened since', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.createProduct({ id: 'storage', name: 'Storage', consumption: [{ event: 'api_call', credits: '5' }], lowBalanceThreshold: null });
    const api = await kit.openBalance('alice', 'api', '100');
    // What a consumer from before markers (migration 005) wrote: the charge, under the same
    // deterministic ids, and no marker.
    const commandId = commandIds.usage('old', api);
    const [charged] = await createUsageBalanceWrites({ eventStore: kit.eventStore, logger: kit.logger }).commands.execute([
      {
        context: { balanceId: api, customerId: 'alice', productId: 'api' },
        commandId,
        firstEventId: ledgerEventId(commandId, 0),
        command: {
          type: 'ConsumeUsage',
          credits: parseCredits('1'),
          usage: { eventId: 'old', event: 'api_call', timestamp: new Date(USAGE_TIME).toISOString(), quantity: '1' },
          at: new Date(USAGE_TIME).toISOString(),
        },
      },
    ]);
    expect(charged?.ok).toBe(true);
    const storage = await kit.openBalance('alice', 'storage', '100');

    const { store, counts } = countingStore(kit.eventStore);
    const consumer = await kit.startConsumer({ eventStore: store });
    // New usage first, so that the partition appends its next chunk without reading first.
    await kit.produce([{ key: 'alice', value: kit.avro(usage('new', 'alice', 'api_call')) }]);
    await consumed(consumer, 1);
    expect(counts.earlierRunReads).toBe(1);
    await kit.produce([{ key: 'alice', value: kit.avro(usage('old', 'alice', 'api_call')) }]);
    await consumed(consumer, 2);

    // The append found the old charge stored, refused the whole call (storage's charge with it),
    // and the chunk read it: metered before, at its first delivery, so charged nowhere now.
    expect(counts).toMatchObject({ earlierRunReads: 2, refusedStored: 1 });
    expect(await kit.balanceOf(api)).toBe('98'); // 100 - 1 (old, then) - 1 (new)
    expect(await kit.balanceOf(storage)).toBe('95'); // 100 - 5 (new)
    expect((await kit.eventStore.readStream(balanceStreamId(api))).filter((event) => event.type === 'CreditConsumed')).toHaveLength(2);
    expect(consumer.counters()).toMatchObject({ matched: 2, skippedByReason: { already_applied: 1 } });
    // Its marker is recorded now: the next delivery is found by the marker.
    expect(await kit.eventStore.readMarkers([meteredUsageMarker('alice', 'old')])).toEqual(new Set([meteredUsageMarker('alice', 'old')]));
  });
});
