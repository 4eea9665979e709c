import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { formatCredits, parseCredits } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPostgresBalanceStateStore, createPurchaseService, loadBalance } from '@tally/ledger';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import type { Pool } from 'pg';
import pino from 'pino';
import type { BalanceView } from './balanceView';
import { buildApp } from '../buildApp';
import { createMetricsRegistry } from '@tally/metrics';

jest.setTimeout(180_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';
const ROUNDS = 25;

/**
 * Two API processes' worth of state: each app has its own pool, event store, catalog, ledger
 * (and so its own balance cache) and its own per-balance write queue, over one schema. What one
 * app's queue serialises, the other's does not: only the ledger and PostgreSQL stand between
 * their writes, as between two processes.
 */
describe('idempotency across API processes', () => {
  let db: TestSchema;
  let redis: Redis;
  const apps: FastifyInstance[] = [];
  const stores: EventStore[] = [];
  const keyPrefix = uniqueName('idem');

  async function apiProcess(pool: Pool): Promise<FastifyInstance> {
    const eventStore = createPostgresEventStore({ pool, logger, notifyChannel: uniqueName('idem') });
    stores.push(eventStore);
    const catalog = createPostgresCatalogStore({ pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger, stateStore: createPostgresBalanceStateStore({ pool }) });
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
    });
    apps.push(app);
    return app;
  }

  let first: FastifyInstance;
  let second: FastifyInstance;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'idem', max: 10 });
    redis = new Redis(stackConfig.redisUrl);
    first = await apiProcess(db.pool);
    second = await apiProcess(db.anotherPool(10));
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await Promise.all(stores.map((store) => store.close()));
    await redis?.quit();
    await db?.drop();
  });

  const call = (app: FastifyInstance, options: InjectOptions): Promise<LightMyRequestResponse> =>
    app.inject({ ...options, headers: { authorization: `Bearer ${KEY}`, ...options.headers } });

  async function product(): Promise<string> {
    const response = await call(first, { method: 'POST', url: '/v1/credit-products', payload: { name: 'API calls' } });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  }

  async function open(productId: string): Promise<string> {
    const response = await call(first, {
      method: 'POST',
      url: `/v1/customers/cus_${randomUUID()}/credit-balances`,
      payload: { productId, startingBalance: '100' },
    });
    expect(response.statusCode).toBe(201);
    return response.json<BalanceView>().id;
  }

  it('answers one 201 and one 409 when the same Idempotency-Key races with two bodies in two processes, every time', async () => {
    const productId = await product();
    for (let round = 0; round < ROUNDS; round += 1) {
      const balanceId = await open(productId);
      const headers = { 'idempotency-key': `race-${round}` };
      const url = `/v1/credit-balances/${balanceId}/top-ups`;
      const [a, b] = await Promise.all([
        call(first, { method: 'POST', url, headers, payload: { credits: '1', reason: 'first body' } }),
        call(second, { method: 'POST', url, headers, payload: { credits: '2', reason: 'second body' } }),
      ]);
      expect([a.statusCode, b.statusCode].sort()).toEqual([201, 409]);
      const [winner, loser] = a.statusCode === 201 ? [a, b] : [b, a];
      expect(loser.json().error).toBe('idempotency_key_reused');
      expect(winner.headers['idempotent-replayed']).toBe('false');
      // Exactly the winner's top-up landed, and the 201 says so.
      const { state } = await loadBalance(stores[0]!, balanceId);
      const won = winner.json<{ balance: BalanceView; entry: { credits: string } }>();
      expect(state.status === 'open' && formatCredits(state.balance)).toBe(formatCredits(parseCredits('100') + parseCredits(won.entry.credits)));
      expect(won.balance.balance).toBe(formatCredits(parseCredits('100') + parseCredits(won.entry.credits)));
    }
  });

  it('answers the first result to both when the same Idempotency-Key races with the same body in two processes', async () => {
    const productId = await product();
    for (let round = 0; round < ROUNDS; round += 1) {
      const balanceId = await open(productId);
      const request = { method: 'POST' as const, url: `/v1/credit-balances/${balanceId}/deductions`, headers: { 'idempotency-key': `same-${round}` }, payload: { credits: '7' } };
      const [a, b] = await Promise.all([call(first, request), call(second, request)]);
      expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
      expect([a.headers['idempotent-replayed'], b.headers['idempotent-replayed']].sort()).toEqual(['false', 'true']);
      expect(a.json().entry.id).toBe(b.json().entry.id);
      expect(a.json().balance).toEqual(b.json().balance);
      const { state } = await loadBalance(stores[0]!, balanceId);
      expect(state.status === 'open' && formatCredits(state.balance)).toBe('93');
    }
  });

  it('opens one balance per customer and product when two processes race to open it: one 201, one 409', async () => {
    const productId = await product();
    for (let round = 0; round < ROUNDS; round += 1) {
      const url = `/v1/customers/cus_${randomUUID()}/credit-balances`;
      const [a, b] = await Promise.all([
        call(first, { method: 'POST', url, payload: { productId, startingBalance: '10' } }),
        call(second, { method: 'POST', url, payload: { productId, startingBalance: '20' } }),
      ]);
      expect([a.statusCode, b.statusCode].sort()).toEqual([201, 409]);
      const [winner, loser] = a.statusCode === 201 ? [a, b] : [b, a];
      expect(loser.json().error).toBe('balance_already_exists');
      // The stored opening is the one the 201 answered, not the loser's.
      const opened = winner.json<BalanceView>();
      const { state } = await loadBalance(stores[0]!, opened.id);
      expect(state.status === 'open' && formatCredits(state.balance)).toBe(opened.balance);
    }
  });
});
