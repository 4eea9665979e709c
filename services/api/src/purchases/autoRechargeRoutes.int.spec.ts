import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { balanceStreamId, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import {
  createAutoRecharges,
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPurchaseService,
  toEventsToAppend,
  type LedgerService,
} from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceProjector, createBalanceReadModel, type BalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const WRITE = 'auto-recharge-write-key-0123456789';
const READ = 'auto-recharge-read-key-0123456789a';
const ADMIN = 'auto-recharge-admin-key-012345678';

/** GET, PUT and DELETE /v1/credit-balances/{balanceId}/auto-recharge against PostgreSQL. */
/** The `refill` bundle's terms as the purchase options list them: what a setting of it buys at. */
const REFILL_TERMS = { credits: '100', price: { amount: '9.90', currency: 'EUR' } };

describe('auto-recharge over HTTP', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let app: FastifyInstance;
  let readModel: BalanceReadModel;
  const keyPrefix = uniqueName('auto_recharge_api');
  /** The arguments of each ledger.getBalance: a load of the balance from the event store. */
  const balanceLoads: unknown[][] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'auto_recharge_api' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const loading = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    const ledger: LedgerService = {
      ...loading,
      getBalance: (...args) => {
        balanceLoads.push(args);
        return loading.getBalance(...args);
      },
    };
    const purchases = createPurchaseService({ catalog, balanceRegistry, ledger });
    redis = new Redis(stackConfig.redisUrl);
    readModel = createBalanceReadModel({ redis, keyPrefix });
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: readModel,
      eventStore,
      apiKeys: [
        { key: WRITE, scopes: ['read', 'write'], name: 'billing' },
        { key: READ, scopes: ['read'], name: 'viewer' },
        { key: ADMIN, scopes: ['read', 'write', 'admin'], name: 'operator' },
      ],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases,
      autoRecharges: createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore }),
    });
  });

  afterAll(async () => {
    await app?.close();
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  const call = (options: InjectOptions, key = WRITE) => app.inject({ ...options, headers: { authorization: `Bearer ${key}`, ...options.headers } });

  async function openBalance(lowBalanceThreshold: string | null): Promise<string> {
    const product = await call({
      method: 'POST',
      url: '/v1/credit-products',
      payload: { name: 'Renders', lowBalanceThreshold, bundles: [{ id: 'refill', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] },
    }, ADMIN);
    expect(product.statusCode).toBe(201);
    const opened = await call({ method: 'POST', url: `/v1/customers/${randomUUID()}/credit-balances`, payload: { productId: product.json().id, startingBalance: '50' } }, ADMIN);
    expect(opened.statusCode).toBe(201);
    return opened.json().id as string;
  }

  it('sets, reads, replaces and turns off a balance\'s auto-recharge, naming the key that set it', async () => {
    const balanceId = await openBalance('20');
    const url = `/v1/credit-balances/${balanceId}/auto-recharge`;
    expect((await call({ method: 'GET', url })).json()).toMatchObject({ error: 'auto_recharge_not_set' });

    const set = await call({ method: 'PUT', url, payload: { bundleId: 'refill' } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toEqual({
      balanceId,
      bundleId: 'refill',
      quantity: 1,
      since: (await eventStore.headPosition()).toString(),
      updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updatedBy: { keyId: expect.stringMatching(/^[0-9a-f]{12}$/), keyName: 'billing' },
      lastRechargedAt: null,
      lastRefusal: null,
      monthlyLimit: null,
      rechargesThisMonth: 0,
      belowWarningLimit: false,
      terms: REFILL_TERMS,
    });
    expect((await call({ method: 'GET', url }, READ)).json()).toEqual(set.json());
    const replaced = await call({ method: 'PUT', url, payload: { bundleId: 'refill', quantity: 3, monthlyLimit: 4 } });
    // A replacement acts from where the setting it replaces did.
    expect(replaced.json()).toMatchObject({ quantity: 3, monthlyLimit: 4, rechargesThisMonth: 0, since: set.json().since });
    expect((await call({ method: 'GET', url }, READ)).json()).toMatchObject({ monthlyLimit: 4 });
    // A setting without the field has no limit: a PUT replaces the whole setting.
    expect((await call({ method: 'PUT', url, payload: { bundleId: 'refill', quantity: 3 } })).json()).toMatchObject({ monthlyLimit: null });

    expect((await call({ method: 'DELETE', url })).statusCode).toBe(204);
    expect((await call({ method: 'GET', url })).statusCode).toBe(404);
    expect((await call({ method: 'DELETE', url })).json()).toMatchObject({ error: 'auto_recharge_not_set' });
  });

  it('answers belowWarningLimit below and above the limit from the balance read, loading the balance only when the read model lacks it, within the budget', async () => {
    const projector = createBalanceProjector({ eventStore, redis, keyPrefix, logger, pollIntervalMs: 100 });
    await projector.start();
    const balanceId = await openBalance('20'); // 50
    const url = `/v1/credit-balances/${balanceId}/auto-recharge`;
    try {
      expect((await call({ method: 'PUT', url, payload: { bundleId: 'refill' } })).json()).toMatchObject({ belowWarningLimit: false });
      const served = (balance: string) =>
        waitFor(async () => (await readModel.getBalance(balanceId))?.balance === balance, { description: `the read model to serve balance ${balance}` });
      const answers: Array<[string, string, boolean]> = [
        ['deductions', '40', true], // 10: below 20
        ['deductions', '0.01', true], // 9.99: still below
        ['top-ups', '10.01', false], // 20: at the limit is not below it
        ['top-ups', '5', false], // 25
      ];
      await served('50');
      balanceLoads.length = 0;
      expect((await call({ method: 'GET', url }, READ)).json()).toMatchObject({ belowWarningLimit: false });
      for (const [change, credits, below] of answers) {
        const changed = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/${change}`, payload: { credits } });
        expect(changed.statusCode).toBe(201);
        await served(changed.json().balance.balance);
        const answer = await call({ method: 'GET', url }, READ);
        expect([changed.json().balance.balance, answer.json().belowWarningLimit]).toEqual([changed.json().balance.balance, below]);
        expect(answer.json().belowWarningLimit).toBe((await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}` }, READ)).json().belowThreshold);
      }
      // Served by the read model: not one load of the balance from the event store.
      expect(balanceLoads).toEqual([]);
    } finally {
      await projector.stop();
    }
    // A balance the read model lacks is folded, as its balance read is: once, with the load budget's signal.
    const unprojected = await openBalance('60'); // 50: below
    const unprojectedUrl = `/v1/credit-balances/${unprojected}/auto-recharge`;
    expect((await call({ method: 'PUT', url: unprojectedUrl, payload: { bundleId: 'refill' } })).json()).toMatchObject({ belowWarningLimit: true });
    balanceLoads.length = 0;
    expect((await call({ method: 'GET', url: unprojectedUrl }, READ)).json()).toMatchObject({ belowWarningLimit: true });
    expect(balanceLoads).toEqual([[unprojected, { signal: expect.any(AbortSignal) }]]);
  });

  it('sets at the terms the caller was shown, refusing a bundle whose terms are no longer those', async () => {
    const balanceId = await openBalance('20');
    const url = `/v1/credit-balances/${balanceId}/auto-recharge`;
    // The same terms spelled otherwise are the same terms, as a purchase compares them.
    const set = await call({ method: 'PUT', url, payload: { bundleId: 'refill', quantity: 2, expected: { credits: '100.000', price: { amount: '9.9', currency: 'EUR' } } } });
    expect([set.statusCode, set.json().terms]).toEqual([200, REFILL_TERMS]);
    const refusals = [
      { credits: '100', price: { amount: '8.90', currency: 'EUR' } },
      { credits: '90', price: { amount: '9.90', currency: 'EUR' } },
      { credits: '100', price: { amount: '9.90', currency: 'USD' } },
    ];
    for (const expected of refusals) {
      const refused = await call({ method: 'PUT', url, payload: { bundleId: 'refill', quantity: 5, expected } });
      expect([refused.statusCode, refused.json().error, refused.json().message]).toEqual([409, 'purchase_terms_changed', expect.stringMatching(/^bundle "refill" is now 100 credits for 9.90 EUR, not .* as expected: auto-recharge was not changed$/)]);
    }
    const malformed = await call({ method: 'PUT', url, payload: { bundleId: 'refill', expected: { credits: 'lots', price: { amount: '9.90', currency: 'EUR' } } } });
    expect([malformed.statusCode, malformed.json().error]).toEqual([400, 'validation_failed']);
    // Nothing of the refused ones was stored.
    expect((await call({ method: 'GET', url }, READ)).json()).toMatchObject({ quantity: 2, terms: REFILL_TERMS, updatedAt: set.json().updatedAt });
  });

  it('answers a malformed setting 4xx with a message saying what is wrong, changing nothing', async () => {
    const balanceId = await openBalance('20');
    const url = `/v1/credit-balances/${balanceId}/auto-recharge`;
    // [what, body (a string is sent as it is), status, error, message]
    const cases: Array<[string, unknown, number, string, RegExp]> = [
      ['a bundle id as a number', { bundleId: 7 }, 400, 'validation_failed', /body\.bundleId must be string/],
      ['an empty bundle id', { bundleId: '' }, 400, 'validation_failed', /body\.bundleId must be 1-128 letters/],
      ['a bundle id of 129 characters', { bundleId: 'r'.repeat(129) }, 400, 'validation_failed', /body\.bundleId must be 1-128 letters/],
      ['a quantity as text', { bundleId: 'refill', quantity: '2' }, 400, 'validation_failed', /body\.quantity must be integer/],
      ['a fractional quantity', { bundleId: 'refill', quantity: 2.5 }, 400, 'validation_failed', /body\.quantity must be integer/],
      ['a negative quantity', { bundleId: 'refill', quantity: -1 }, 400, 'validation_failed', /body\.quantity must be >= 1/],
      ['a huge quantity', { bundleId: 'refill', quantity: 1e300 }, 400, 'validation_failed', /body\.quantity must be <= 1000000/],
      ['a quantity past what JSON numbers hold exactly', '{"bundleId":"refill","quantity":123456789012345678901234567890}', 400, 'validation_failed', /body\.quantity must be <= 1000000/],
      ['a quantity beyond a double', '{"bundleId":"refill","quantity":1e400}', 400, 'validation_failed', /body\.quantity/],
      ['a __proto__ field', '{"bundleId":"refill","__proto__":{"quantity":2}}', 400, 'validation_failed', /body has a property named "__proto__"/],
      ['a monthly limit as text', { bundleId: 'refill', monthlyLimit: '5' }, 400, 'validation_failed', /body\.monthlyLimit/],
      ['a huge monthly limit', { bundleId: 'refill', monthlyLimit: 1e300 }, 400, 'validation_failed', /body\.monthlyLimit/],
      ['a fractional monthly limit', { bundleId: 'refill', monthlyLimit: 1.5 }, 400, 'validation_failed', /body\.monthlyLimit/],
      ['an unknown field', { bundleId: 'refill', price: { amount: '9.90', currency: 'EUR' } }, 400, 'validation_failed', /unknown property "price"/],
      ['no body fields', {}, 400, 'validation_failed', /bundleId/],
      ['an array', [], 400, 'validation_failed', /body must be object/],
      ['null', 'null', 400, 'validation_failed', /body must be object/],
      ['malformed JSON', '{"bundleId":', 400, 'invalid_json', /JSON/],
    ];
    const answers = [];
    for (const [what, body] of cases) {
      const response = await call({ method: 'PUT', url, headers: { 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
      const answer = response.json<{ error?: string; message?: string }>();
      answers.push({ what, status: response.statusCode, error: answer.error, message: answer.message });
    }
    expect(answers).toEqual(cases.map(([what, , status, error, message]) => ({ what, status, error, message: expect.stringMatching(message) })));
    const longId = await call({ method: 'PUT', url: `/v1/credit-balances/${'b'.repeat(300)}/auto-recharge`, payload: { bundleId: 'refill' } });
    expect([longId.statusCode, longId.json().message]).toEqual([400, expect.stringMatching(/params\.balanceId must be 1-128 letters/)]);
    expect((await call({ method: 'GET', url })).json()).toMatchObject({ error: 'auto_recharge_not_set' });
  });

  it('refuses what it could never buy, and a key that may only read', async () => {
    const balanceId = await openBalance('20');
    const url = `/v1/credit-balances/${balanceId}/auto-recharge`;
    const refusals: Array<[InjectOptions, number, string]> = [
      [{ method: 'PUT', url, payload: { bundleId: 'huge' } }, 404, 'bundle_not_found'],
      [{ method: 'PUT', url, payload: { bundleId: 'refill', quantity: 0 } }, 400, 'validation_failed'],
      [{ method: 'PUT', url, payload: { bundleId: 'refill', price: '1' } }, 400, 'validation_failed'],
      [{ method: 'PUT', url, payload: { bundleId: 'refill', monthlyLimit: 0 } }, 400, 'validation_failed'],
      [{ method: 'PUT', url, payload: { bundleId: 'refill', monthlyLimit: 1001 } }, 400, 'validation_failed'],
      [{ method: 'PUT', url, payload: { bundleId: 'refill', monthlyLimit: '5' } }, 400, 'validation_failed'],
      [{ method: 'PUT', url: `/v1/credit-balances/${randomUUID()}/auto-recharge`, payload: { bundleId: 'refill' } }, 404, 'balance_not_found'],
      [{ method: 'GET', url: `/v1/credit-balances/${randomUUID()}/auto-recharge` }, 404, 'balance_not_found'],
      [{ method: 'PUT', url: `/v1/credit-balances/${await openBalance(null)}/auto-recharge`, payload: { bundleId: 'refill' } }, 409, 'warning_limit_not_set'],
    ];
    for (const [request, status, error] of refusals) {
      const response = await call(request);
      expect({ url: request.url, payload: request.payload, status: response.statusCode, error: response.json().error }).toEqual({ url: request.url, payload: request.payload, status, error });
      expect(response.json().message).toEqual(expect.any(String));
    }
    expect((await call({ method: 'PUT', url, payload: { bundleId: 'refill' } }, READ)).statusCode).toBe(403);
    expect((await call({ method: 'DELETE', url }, READ)).statusCode).toBe(403);
  });
});

/** Long enough that folding it (40 pages, each a query) outlasts the tiny budget by far. */
const HISTORY = 40_000;
const STARTING = 1_000_000;
const TINY_BUDGET_MS = 20;

/**
 * PUT auto-recharge loads the balance (its warning limit, whether it is below it) as a read of a
 * balance the read model lacks does: within the API's load budget, answering 503 balance_loading
 * past it while the fold goes on for the retry, not holding the request for the whole history.
 */
describe('auto-recharge set on a balance whose history is still being folded', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let app: FastifyInstance;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'auto_recharge_budget', max: 12 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger, stateStore: createPostgresBalanceStateStore({ pool: db.pool }) });
    const purchases = createPurchaseService({ catalog, balanceRegistry, ledger });
    redis = new Redis(stackConfig.redisUrl);
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('auto_recharge_budget') }),
      eventStore,
      apiKeys: [{ key: ADMIN, scopes: ['read', 'write', 'admin'], name: 'operator' }],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases,
      autoRecharges: createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore }),
      options: { balanceLoadBudgetMs: TINY_BUDGET_MS },
    });
  });

  afterAll(async () => {
    await app?.close();
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  const call = (options: InjectOptions) => app.inject({ ...options, headers: { authorization: `Bearer ${ADMIN}`, ...options.headers } });

  /** A balance with a warning limit, opened through the API, then HISTORY charges of 1 credit appended in big batches. */
  async function longBalance(): Promise<string> {
    const product = await call({
      method: 'POST',
      url: '/v1/credit-products',
      payload: { name: 'Renders', lowBalanceThreshold: '20', bundles: [{ id: 'refill', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] },
    });
    expect(product.statusCode).toBe(201);
    const productId = product.json<{ id: string }>().id;
    const customerId = `cus_${randomUUID()}`;
    const opened = await call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId, startingBalance: String(STARTING) } });
    expect(opened.statusCode).toBe(201);
    const balanceId = opened.json<{ id: string }>().id;
    const streamId = balanceStreamId(balanceId);
    let end = (await eventStore.readStream(streamId, { direction: 'backwards', maxCount: 1 }))[0]!.revision;
    const context = { balanceId, customerId, productId };
    const occurredAt = new Date().toISOString();
    for (let done = 0; done < HISTORY; done += 5_000) {
      const events: BalanceEvent[] = Array.from({ length: 5_000 }, (_, i) => ({
        type: 'CreditConsumed',
        credits: MICROS_PER_CREDIT,
        source: 'manual',
        reason: 'history',
        usage: null,
        balanceAfter: BigInt(STARTING - done - i - 1) * MICROS_PER_CREDIT,
        heldAfter: 0n,
        occurredAt,
      }));
      const [appended] = await eventStore.appendMany([{ streamId, expectedRevision: end, events: toEventsToAppend(events, context, `history:${randomUUID()}`) }]);
      end = appended!.nextExpectedRevision;
    }
    return balanceId;
  }

  const isSet = async (balanceId: string) => (await db.pool.query('SELECT 1 FROM auto_recharges WHERE balance_id = $1', [balanceId])).rowCount === 1;

  it('answers 503 balance_loading within the budget, setting nothing, and the retry sets it from the fold that went on', async () => {
    const balanceId = await longBalance();
    const set = () => call({ method: 'PUT', url: `/v1/credit-balances/${balanceId}/auto-recharge`, payload: { bundleId: 'refill' } });

    const first = await set();
    expect([first.statusCode, first.headers['retry-after'], first.json()]).toEqual([
      503,
      '1',
      { error: 'balance_loading', message: expect.stringMatching(/still being folded.*retry/) },
    ]);
    expect(await isSet(balanceId)).toBe(false);

    const applied = await waitFor(
      async (): Promise<LightMyRequestResponse | false> => {
        const response = await set();
        return response.statusCode === 503 && response.json<{ error: string }>().error === 'balance_loading' ? false : response;
      },
      { description: 'the retried setting to be answered other than balance_loading', timeoutMs: 120_000, intervalMs: 20 },
    );
    expect([applied.statusCode, applied.json()]).toEqual([200, expect.objectContaining({ balanceId, bundleId: 'refill', belowWarningLimit: false })]);
    expect(await isSet(balanceId)).toBe(true);
  });
});
