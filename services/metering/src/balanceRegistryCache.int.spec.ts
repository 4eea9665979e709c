import { createPostgresCatalogStore } from '@tally/catalog';
import { createBalanceRegistryCache, createPostgresBalanceRegistry, type BalanceRegistryCache } from '@tally/ledger';
import { creditProductFromDto } from '@tally/domain';
import { createPool } from '@tally/postgres';
import { createTestSchema, stackConfig, startTcpProxyFor, uniqueName, waitFor, type TcpProxy, type TestSchema } from '@tally/test-support';
import type { Pool } from 'pg';
import pino from 'pino';
import { createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(120_000);

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
    const store = kit.registryStore;
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

    const consumer = await kit.startConsumer({ balanceRegistry: registry, batchSize: 1 });
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

/**
 * The LISTEN connection lost: notifications sent meanwhile are gone, so the cache must neither
 * serve nor keep anything until it listens again. Its connection goes through a proxy this test
 * cuts, so the shared PostgreSQL is not touched.
 */
describe('the balance registry cache without its LISTEN connection', () => {
  let db: TestSchema | undefined;
  let proxied: { proxy: TcpProxy; pool: Pool } | undefined;
  let registry: BalanceRegistryCache | undefined;

  afterEach(async () => {
    await registry?.close();
    await proxied?.pool.end();
    await proxied?.proxy.close();
    await db?.drop();
  });

  it('is cleared when the connection drops, reads the store until it is back, then caches again', async () => {
    db = await createTestSchema({ prefix: 'registry_listen' });
    const logger = pino({ level: 'silent' });
    const store = createPostgresBalanceRegistry({ pool: db.pool });
    await createPostgresCatalogStore({ pool: db.pool, logger }).createProduct(creditProductFromDto({ id: 'api', name: 'API', description: '', bundles: [], lowBalanceThreshold: null, consumption: [] }));
    const { proxy, url } = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    proxied = { proxy, pool: createPool({ connectionString: url, schema: db.schema, applicationName: 'registry-listen', logger }) };
    const queried: string[][] = [];
    // Registry reads on the direct pool; only the LISTEN connection (opened with the proxied
    // pool's settings) goes through the proxy.
    registry = createBalanceRegistryCache({
      store: { ...store, balancesOfCustomers: (ids) => (queried.push([...ids]), store.balancesOfCustomers(ids)) },
      pool: proxied.pool,
      logger,
    });
    await registry.start();
    const carol = uniqueName('carol');
    const lookup = async () => (await registry!.balancesOfCustomers([carol])).get(carol)?.map((ref) => ref.id) ?? [];

    expect(await lookup()).toEqual([]);
    expect(await lookup()).toEqual([]);
    expect(queried).toHaveLength(1);

    // The connection is lost: the cache is cleared at once (the loss counts as an invalidation).
    const invalidations = registry.stats().invalidations;
    proxy.down();
    await waitFor(() => registry!.stats().invalidations > invalidations, { description: 'the LISTEN connection lost', timeoutMs: 10_000 });
    // A registration nobody hears: its NOTIFY is gone. Every lookup now reads the store.
    await store.registerBalance({ id: `${carol}-api`, customerId: carol, productId: 'api' });
    expect(await lookup()).toEqual([`${carol}-api`]);
    expect(await lookup()).toEqual([`${carol}-api`]);
    expect(queried).toHaveLength(3);

    // Back: a lookup reconnects in the background, and once LISTEN is in place answers are kept.
    proxy.resume();
    await waitFor(
      async () => {
        const before = registry!.stats().hits;
        await lookup();
        return registry!.stats().hits > before;
      },
      { description: 'the cache serving again after LISTEN is back', timeoutMs: 20_000 },
    );
    expect(await lookup()).toEqual([`${carol}-api`]);
  });
});
