import { capturedLog, waitFor } from '@tally/test-support';
import { meteredUsageMarker } from '@tally/ledger';
import type { UsageConsumerOptions } from './usageConsumerOptions';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createMeteringTestKit, usageRecord, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(120_000);

/**
 * A balance registered but not opened (an opening in progress, or one that never comes): usage
 * charging it waits for the opening, out of the fetch, so that only its own partition waits; and
 * the wait runs from the registration, so that a restart or another member does not pay it again.
 */
describe('usage waiting for a balance to be opened', () => {
  let kit: MeteringTestKit;
  afterEach(async () => {
    await kit?.close();
  });

  it('holds only its own partition: usage on the others is metered meanwhile, and it is metered once the balance opens', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const erin = await kit.openBalance('erin', 'api', '10');
    const { logger, lines } = capturedLog('warn');
    await kit.startConsumer({ logger, balanceOpenWaitMs: 30_000, maxBackoffMs: 500 });
    // Warm-up: erin's partition is consumed.
    await kit.produce([{ key: 'erin', partition: 1, value: kit.json(usageRecord('e0', 'erin')) }]);
    await waitFor(async () => (await kit.balanceOf(erin)) === '9', { description: 'e0 metered', timeoutMs: 60_000 });
    // Registered, its opening not appended yet; the wait (30 s) runs from here.
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    // One chunk on partition 0: erin's usage, then dave's, which waits.
    await kit.produce([
      { key: 'erin', partition: 0, value: kit.json(usageRecord('e-p0', 'erin')) },
      { key: 'dave', partition: 0, value: kit.json(usageRecord('d1', 'dave')) },
    ]);
    await waitFor(() => lines.some((line) => line.includes('waiting for credit balance(s) dave-api to be opened')), {
      description: "dave's usage waiting for the opening",
      timeoutMs: 60_000,
    });
    // What comes before the usage waiting is metered and committed: the partition waits at d1 (offset 1).
    const committedAt0 = async () => (await kit.admin.fetchOffsets({ groupId: kit.groupId, topics: [kit.topic] }))[0]!.partitions.find(({ partition }) => partition === 0)!.offset;
    await waitFor(async () => (await committedAt0()) === '1', { description: 'partition 0 committed up to d1', timeoutMs: 20_000 });
    expect(await kit.balanceOf(erin)).toBe('8');

    // Produced while dave's usage waits: metered long before the 30 s wait could end.
    const t0 = Date.now();
    await kit.produce([{ key: 'erin', partition: 1, value: kit.json(usageRecord('e1', 'erin')) }]);
    await waitFor(async () => (await kit.balanceOf(erin)) === '7', { description: 'e1 metered', timeoutMs: 60_000, intervalMs: 100 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await kit.eventStore.readMarkers([meteredUsageMarker('dave', 'd1')])).toEqual(new Set());

    // The opening comes: the held partition, resumed and checked again, meters dave's usage.
    const dave = await kit.openBalance('dave', 'api', '10');
    await waitFor(async () => (await kit.balanceOf(dave)) === '9', { description: 'd1 metered once the balance opened', timeoutMs: 60_000 });
    await waitFor(async () => (await committedAt0()) === '2', {
      description: 'partition 0 committed past d1',
      timeoutMs: 60_000,
    });
  });

  it('waits from the registration, not from when this consumer first saw it: one registered long ago is not waited for again', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'gina-api', customerId: 'gina', productId: 'api' });
    // Registered an hour ago, its opening never came (a crash in between): any consumer, a new one
    // or one restarted, has waited long enough already.
    await kit.db.pool.query(`UPDATE credit_balances SET created_at = now() - interval '1 hour' WHERE id = 'gina-api'`);
    const consumer = await kit.startConsumer({ balanceOpenWaitMs: 60_000, maxBackoffMs: 200 });
    await kit.produce([{ key: 'gina', value: kit.json(usageRecord('g1', 'gina')) }]);
    // Well within the 60 s this consumer would wait if it counted from its own first sighting.
    const [dead] = await kit.readTopic(kit.dlqTopic, 1, 20_000);
    expect(dead!.headers![DEAD_LETTER_HEADERS.errorCode]!.toString()).toBe('balance_not_opened');
    expect(await kit.eventStore.readMarkers([meteredUsageMarker('gina', 'g1')])).toEqual(new Set());
    await waitFor(() => consumer.counters().consumed === 1, { description: 'g1 consumed', timeoutMs: 20_000 });
  });

  it('meters the usage before the one waiting from the stage its chunk already prepared: no second read of the registry, catalog or earlier runs', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const erin = await kit.openBalance('erin', 'api', '10');
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    // Produced before the consumer starts: one batch, one chunk, dave's usage last.
    await kit.produce([
      { key: 'erin', value: kit.json(usageRecord('e1', 'erin')) },
      { key: 'erin', value: kit.json(usageRecord('e2', 'erin')) },
      { key: 'dave', value: kit.json(usageRecord('d1', 'dave')) },
    ]);
    // Every read the stateless stage makes, counted (the decoder reads nothing for JSON).
    const calls = { balancesOfCustomers: 0, registrationAges: 0, getProduct: 0, readAppendTraces: 0 };
    const counting = <T extends object>(target: T, names: readonly (keyof typeof calls)[]): T =>
      new Proxy(target, {
        get(object, property, receiver) {
          const value = Reflect.get(object, property, receiver) as unknown;
          if (typeof value !== 'function' || !names.includes(property as keyof typeof calls)) return value;
          return (...args: unknown[]) => {
            calls[property as keyof typeof calls] += 1;
            return (value as (...args: unknown[]) => unknown).apply(object, args);
          };
        },
      });
    // The reads done by the time the partition is first held: the chunk's, and its usage before d1's.
    let atTheHold: typeof calls | undefined;
    const metrics: UsageConsumerOptions['metrics'] = {
      batchProcessed: () => undefined,
      partitionsAssigned: () => undefined,
      groupLagRead: () => undefined,
      partitionHeld: () => void (atTheHold ??= { ...calls }),
    };
    await kit.startConsumer({
      balanceRegistry: counting(kit.balanceRegistry, ['balancesOfCustomers', 'registrationAges']),
      catalogCache: counting(kit.catalogCache, ['getProduct']),
      eventStore: counting(kit.eventStore, ['readAppendTraces']),
      metrics,
      balanceOpenWaitMs: 60_000,
    });
    const reads = await waitFor(() => atTheHold, { description: "the partition held at dave's usage", timeoutMs: 60_000 });
    expect(await kit.balanceOf(erin)).toBe('8');
    // One of each for the whole chunk: e1 and e2 are appended from the stage it prepared.
    expect(reads).toEqual({ balancesOfCustomers: 1, registrationAges: 1, getProduct: 1, readAppendTraces: 1 });
  });
});
