import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { creditProductFromDto, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, createUnreachablePool, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Pool } from 'pg';
import pino from 'pino';
import { buildApp } from '../buildApp';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';

/**
 * An entitlement check of a balance the read model does not hold (opened a moment ago, Redis
 * being rebuilt) is folded from the event store; which balance that is, the balance registry in
 * PostgreSQL says. Issue: while the registry could not be read, the check answered 404
 * balance_not_found for a balance that exists, and a backend would refuse the customer's work.
 */
describe('an entitlement check the read model cannot answer', () => {
  let db: TestSchema;
  let redis: Redis;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let ledger: LedgerService;
  let unreachable: Pool;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'entitlement_fallback' });
    redis = new Redis(stackConfig.redisUrl);
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    unreachable = createUnreachablePool('entitlement-fallback');
    await catalog.createProduct(creditProductFromDto({ id: 'api', name: 'API calls', description: '', bundles: [], consumption: [], lowBalanceThreshold: null }));
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await unreachable?.end();
    await ledger?.close();
    await eventStore?.close();
    await redis?.quit();
    await db?.drop();
  });

  /** An API over a read model no projector writes, reading which balances exist from `registry`. */
  async function startApi(registry: BalanceRegistry) {
    const app = await buildApp({
      catalog,
      balanceRegistry: registry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('entitlement-fallback') }),
      eventStore,
      apiKeys: [KEY],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry: registry, ledger }),
    });
    apps.push(app);
    return (customerId: string, productId: string) =>
      app.inject({ method: 'GET', url: `/v1/customers/${customerId}/entitlements/${productId}?credits=2`, headers: { authorization: `Bearer ${KEY}` } });
  }

  it('folds the balance of the product from the event store, and is 404 only when the registry says there is none', async () => {
    const check = await startApi(balanceRegistry);
    const customerId = uniqueName('acme');
    await ledger.openBalance({ customerId, productId: 'api', startingBalance: parseCredits('5') });
    const allowed = await check(customerId, 'api');
    expect(allowed.statusCode).toBe(200);
    expect(allowed.json()).toMatchObject({ allowed: true, balance: '5', available: '5', lagMs: 0 });
    const none = await check(customerId, 'no-such-product');
    expect(none.statusCode).toBe(404);
    expect(none.json()).toMatchObject({ error: 'balance_not_found' });
  });

  it('answers 503 with Retry-After, not 404, while the balance registry cannot be read', async () => {
    const check = await startApi(createPostgresBalanceRegistry({ pool: unreachable }));
    const customerId = uniqueName('acme');
    await ledger.openBalance({ customerId, productId: 'api', startingBalance: parseCredits('5') });
    const answer = await check(customerId, 'api');
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.json()).toMatchObject({ error: 'catalog_unavailable' });
  });
});
