import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceProjector, createBalanceReadModel, type BalanceProjector } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';
const PRODUCT = 'api';

/**
 * Issue: while the read model was being rebuilt (after a Redis flush: no generation yet, or a new
 * one the projector folds up to the head it had when it made it), plain reads were folded from
 * the event store, but `consistent=true` waited for the rebuild to reach the head and answered
 * 503 not_consistent, although the fold is exact and consistent by construction. A consistent
 * read now takes the fold too.
 */
describe('a consistent read while the read model is rebuilt', () => {
  let db: TestSchema;
  let redis: Redis;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let ledger: LedgerService;
  const apps: FastifyInstance[] = [];
  const projectors: BalanceProjector[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'consistent_rebuild' });
    redis = new Redis(stackConfig.redisUrl);
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('consistent_rebuild') });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    await catalog.createProduct(creditProductFromDto({ id: PRODUCT, name: 'API calls', description: '', bundles: [], consumption: [], lowBalanceThreshold: null }));
  });

  afterAll(async () => {
    await Promise.all(projectors.map((projector) => projector.stop()));
    await Promise.all(apps.map((app) => app.close()));
    await ledger?.close();
    await eventStore?.close();
    await redis?.quit();
    await db?.drop();
  });

  /** An API over the read model at `keyPrefix`; a consistent read waits a second at most, so a wrong 503 comes quickly. */
  async function startApi(keyPrefix: string) {
    const app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [KEY],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      options: { consistencyTimeoutMs: 1000 },
    });
    apps.push(app);
    return (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${KEY}` } });
  }

  /** A balance of 5 credits topped up by 2 (the top-up acknowledged before any read); its id, customer and last event's position. */
  async function balanceOfSeven(): Promise<{ balanceId: string; customerId: string; position: string }> {
    const customerId = uniqueName('acme');
    const opened = await ledger.openBalance({ customerId, productId: PRODUCT, startingBalance: parseCredits('5') });
    const balanceId = opened.balance.balanceId;
    await ledger.topUp(balanceId, { credits: parseCredits('2'), reason: 'before the read' }, { idempotencyKey: uniqueName('top-up') });
    const [last] = await eventStore.readStream(balanceStreamId(balanceId), { direction: 'backwards', maxCount: 1 });
    return { balanceId, customerId, position: last!.position.toString() };
  }

  /** Every consistent read of the balance answers 200 with its exact figures. */
  async function expectConsistentReads(call: Awaited<ReturnType<typeof startApi>>, { balanceId, customerId, position }: { balanceId: string; customerId: string; position: string }) {
    const one = await call(`/v1/credit-balances/${balanceId}?consistent=true`);
    expect({ status: one.statusCode, body: one.json() }).toMatchObject({ status: 200, body: { id: balanceId, balance: '7', available: '7', position } });
    const list = await call(`/v1/customers/${customerId}/credit-balances?consistent=true`);
    expect({ status: list.statusCode, body: list.json() }).toMatchObject({ status: 200, body: { items: [{ id: balanceId, balance: '7', position }] } });
    const check = await call(`/v1/customers/${customerId}/entitlements/${PRODUCT}?credits=7&consistent=true`);
    expect({ status: check.statusCode, body: check.json() }).toMatchObject({ status: 200, body: { allowed: true, balance: '7', available: '7', held: '0' } });
  }

  it('folds it from the event store while Redis holds no generation (flushed, the projector not back yet)', async () => {
    const balance = await balanceOfSeven();
    const call = await startApi(uniqueName('flushed'));
    await expectConsistentReads(call, balance);
  });

  it('folds it from the event store while the projector rebuilds a new generation up to its target, and reads the read model once it is there', async () => {
    const balance = await balanceOfSeven();
    const keyPrefix = uniqueName('rebuilding');
    // The projector makes its generation (target: the head) and is then held before its first
    // batch: a rebuild of a long history, still on its way, for as long as the test needs.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const held: EventStore = {
      ...eventStore,
      subscribeToAll: (options) =>
        eventStore.subscribeToAll({
          ...options,
          onEvents: async (events) => {
            await released;
            await options.onEvents(events);
          },
        }),
    };
    const projector = createBalanceProjector({ eventStore: held, redis, keyPrefix, logger, pollIntervalMs: 50 });
    projectors.push(projector);
    const call = await startApi(keyPrefix);
    try {
      await projector.start();
      // Rebuilding as projections/README.md lays it out: an active generation, its checkpoint below its target.
      const generation = await redis.get(`${keyPrefix}:active`);
      expect(generation).not.toBeNull();
      const [checkpoint, target] = await redis.mget(`${keyPrefix}:${generation}:checkpoint`, `${keyPrefix}:${generation}:target`);
      expect(BigInt(checkpoint!)).toBeLessThan(BigInt(target!));
      await expectConsistentReads(call, balance);
    } finally {
      // Else the projector's stop would wait for the batch it holds.
      release();
    }
    const readModel = createBalanceReadModel({ redis, keyPrefix });
    await waitFor(async () => (await readModel.getBalance(balance.balanceId)) !== undefined, { description: 'the rebuilt generation served' });
    await expectConsistentReads(call, balance);
  });
});
