import { createBalanceRegistryCache, type BalanceRegistryCache } from '@tally/catalog';
import { uniqueName, waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';

jest.setTimeout(120_000);

const T0 = Date.UTC(2026, 2, 1, 12);

const usage = (id: string, customerId: string): UsageRecord => ({ id, customerId, event: 'api_call', timestamp: T0, properties: {} });

/**
 * Issue 11 §3: the consumer reads the balance registry from memory, and a balance registered
 * while it runs reaches it through migration 011's NOTIFY, which drops the customer's entry.
 */
describe('the balance registry cached and invalidated by LISTEN/NOTIFY', () => {
  let kit: MeteringTestKit | undefined;
  let registry: BalanceRegistryCache | undefined;

  afterEach(async () => {
    await kit?.close();
    await registry?.close();
  });

  it('charges usage arriving after a balance is registered and opened while the consumer runs', async () => {
    kit = await createMeteringTestKit();
    const store = kit.catalogStore;
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    // Customer ids of this test alone: the channel is database-wide, and another test's
    // registration for a customer of the same name would drop our entry too (harmless, but it
    // would make the query count below say less).
    const alice = uniqueName('alice');
    const bob = uniqueName('bob');
    const aliceApi = await kit.openBalance(alice, 'api', '100');

    // Every registry query the consumer makes, through a wrapper around the real store.
    const queried: string[][] = [];
    registry = createBalanceRegistryCache({
      store: { ...store, balancesOfCustomers: (ids) => (queried.push([...ids]), store.balancesOfCustomers(ids)) },
      pool: kit.db.pool,
      logger: kit.logger,
    });
    await registry.start();
    const queriesOf = (customerId: string) => queried.filter((ids) => ids.includes(customerId)).length;

    const consumer = await kit.startConsumer({ catalogStore: registry, batchSize: 1 });
    // bob has no balance yet: his usage is metered as "nothing to charge", and remembered so.
    await kit.produce([{ key: bob, value: kit.json(usage('b1', bob)) }, { key: alice, value: kit.json(usage('a1', alice)) }]);
    await waitFor(() => consumer.counters().consumed >= 2, { description: 'the first usage consumed', timeoutMs: 60_000 });
    expect(await kit.balanceOf(aliceApi)).toBe('99');
    expect(queriesOf(bob)).toBe(1);
    expect(queriesOf(alice)).toBe(1);

    // Served from memory: no query for either customer (chunks of one message each).
    await kit.produce([{ key: bob, value: kit.json(usage('b2', bob)) }, { key: alice, value: kit.json(usage('a2', alice)) }]);
    await waitFor(() => consumer.counters().consumed >= 4, { description: 'the second usage consumed', timeoutMs: 60_000 });
    expect(await kit.balanceOf(aliceApi)).toBe('98');
    expect(queriesOf(bob)).toBe(1);
    expect(queriesOf(alice)).toBe(1);
    expect(registry.stats().hits).toBeGreaterThanOrEqual(2);

    // bob's balance registered and opened through the ledger, as the API does. The trigger's
    // NOTIFY drops bob's entry; alice's stays.
    const invalidations = registry.stats().invalidations;
    const bobApi = await kit.openBalance(bob, 'api', '10');
    // Delivered after the commit, a few milliseconds later: wait for it, not for a time.
    await waitFor(() => registry!.stats().invalidations > invalidations, { description: "bob's registration notified", timeoutMs: 10_000 });
    await kit.produce([{ key: bob, value: kit.json(usage('b3', bob)) }, { key: alice, value: kit.json(usage('a3', alice)) }]);
    await waitFor(() => consumer.counters().consumed >= 6, { description: 'the third usage consumed', timeoutMs: 60_000 });
    expect(await kit.balanceOf(bobApi)).toBe('9');
    expect(await kit.balanceOf(aliceApi)).toBe('97');
    // The registry was read again for bob, and for bob only: the notification, not an expiry.
    expect(queriesOf(bob)).toBe(2);
    expect(queriesOf(alice)).toBe(1);
    // The usage from before the registration stays as it was metered (exactly once, whenever).
    const charged = (await kit.streamOf(bobApi)).filter((event) => event.type === 'CreditConsumed');
    expect(charged).toHaveLength(1);
  });
});
