import { createPostgresCheckpointStore, readProcessorStatus } from '@tally/runtime';
import { tryAcquireAdvisoryLease } from '@tally/postgres';
import { createHash, randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { formatCredits, parseCredits, TallyError } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPostgresStatementStarts,
  createPurchaseService,
  loadBalance,
  type BalanceRegistry,
  type LedgerService,
} from '@tally/ledger';
import { createBalanceProjector, createBalanceReadModel, type BalanceProjector } from '@tally/projections';
import { createTestSchema, createUnreachablePool, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp, type ApiDeps } from './buildApp';
import type { BalanceView } from './balances/balanceView';
import type { LedgerEntryView } from './ledger/ledgerEntryView';
import { LEDGER_CSV_COLUMNS, spreadsheetSafe } from './ledger/ledgerCsv';
import { createLedgerHistory } from './ledger/ledgerHistory';
import { parse as parseCsv } from 'csv-parse/sync';
import { createMetricsRegistry } from '@tally/metrics';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';
const SECOND_KEY = 'second-key-fedcba9876543210';
const auth = { authorization: `Bearer ${KEY}` };

/** What a revision names a key by: the first 12 hex digits of its SHA-256. */
function keyIdOf(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

interface ChangeResponse {
  entry: LedgerEntryView;
  balance: BalanceView;
}

describe('HTTP API against PostgreSQL and Redis', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let ledger: LedgerService;
  let redis: Redis;
  let projector: BalanceProjector;
  let deps: ApiDeps;
  let app: FastifyInstance;
  const keyPrefix = uniqueName('api');

  const startProjector = async () => {
    projector = createBalanceProjector({ eventStore, redis, keyPrefix, logger, pollIntervalMs: 100 });
    await projector.start();
  };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'api', max: 20 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('api'), pollIntervalMs: 100 });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    redis = new Redis(stackConfig.redisUrl);
    await startProjector();
    deps = {
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [{ key: KEY, scopes: ['admin'], name: 'ops' }, SECOND_KEY],
      logger,
      health: async () => ({ postgres: 'up', redis: 'up' }),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      processors: () => readProcessorStatus(db.pool, eventStore),
      statementStarts: createPostgresStatementStarts({ pool: db.pool, states: createPostgresBalanceStateStore({ pool: db.pool }) }),
      options: { consistencyTimeoutMs: 20_000 },
    };
    app = await buildApp(deps);
  });

  afterAll(async () => {
    await app?.close();
    await projector?.stop();
    await eventStore?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await redis.quit();
    }
    await db?.drop();
  });

  function call(options: InjectOptions): Promise<LightMyRequestResponse> {
    return app.inject({ ...options, headers: { ...auth, ...options.headers } });
  }

  async function createProduct(body: Record<string, unknown> = {}): Promise<{ id: string }> {
    const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'API calls', ...body } });
    expect(response.statusCode).toBe(201);
    return response.json();
  }

  async function openBalance(productId: string, body: Record<string, unknown> = {}, customerId = `cus_${randomUUID()}`) {
    const response = await call({
      method: 'POST',
      url: `/v1/customers/${encodeURIComponent(customerId)}/credit-balances`,
      payload: { productId, ...body },
    });
    expect(response.statusCode).toBe(201);
    return response.json<BalanceView>();
  }

  function expectError(response: LightMyRequestResponse, statusCode: number, error: string): void {
    expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode, error });
    expect(typeof response.json().message).toBe('string');
    expect(Object.keys(response.json()).sort()).toEqual(['error', 'message']);
  }

  describe('authentication', () => {
    it.each([
      ['no Authorization header', {}],
      ['another scheme', { authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` }],
      ['a bearer without a key', { authorization: 'Bearer ' }],
      ['a wrong key', { authorization: 'Bearer not-the-key' }],
      ['a prefix of the key', { authorization: `Bearer ${KEY.slice(0, -1)}` }],
      ['the key in another case', { authorization: `Bearer ${KEY.toUpperCase()}` }],
    ])('refuses %s on every /v1 route with 401', async (_case, headers) => {
      for (const [method, url] of [
        ['GET', '/v1/credit-products'],
        ['POST', '/v1/credit-products'],
        ['GET', '/v1/credit-balances/b1'],
        ['POST', '/v1/credit-balances/b1/top-ups'],
        ['GET', '/v1/credit-balances/b1/ledger'],
        ['GET', '/v1/customers/c1/credit-balances'],
      ] as const) {
        const response = await app.inject({ method, url, headers, payload: method === 'POST' ? {} : undefined });
        expectError(response, 401, 'unauthorized');
        expect(response.headers['www-authenticate']).toBe('Bearer');
      }
    });

    it('admits every configured key', async () => {
      for (const key of [KEY, SECOND_KEY]) {
        const response = await app.inject({ method: 'GET', url: '/v1/credit-products', headers: { authorization: `Bearer ${key}` } });
        expect(response.statusCode).toBe(200);
      }
    });

    it('serves /health, /metrics and /docs without a key', async () => {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
    });
  });

  describe('request errors', () => {
    it('answers an unknown route with 404 in the error shape', async () => {
      expectError(await call({ method: 'GET', url: '/v1/nothing-here' }), 404, 'not_found');
      expectError(await call({ method: 'GET', url: '/nothing-here' }), 404, 'not_found');
    });

    it('answers an unknown route 401 to a client without a valid key, so it learns no route', async () => {
      expectError(await app.inject({ method: 'GET', url: '/nothing-here' }), 401, 'unauthorized');
      expectError(await app.inject({ method: 'POST', url: '/v1/nothing-here', headers: { authorization: 'Bearer wrong-key-0123456789' } }), 401, 'unauthorized');
    });

    it('answers malformed JSON with 400', async () => {
      const response = await call({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { 'content-type': 'application/json' },
        payload: '{"name": ',
      });
      expectError(response, 400, 'invalid_json');
    });

    it('answers a prototype-poisoning body with 400, naming the property rather than calling the JSON invalid', async () => {
      const response = await call({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { 'content-type': 'application/json' },
        payload: '{"name":"x","__proto__":{"admin":true}}',
      });
      expectError(response, 400, 'validation_failed');
      expect(response.json().message).toBe('body has a property named "__proto__", which the API does not accept: rename it');
    });

    it('answers a NUL character (which PostgreSQL cannot store) with 400, in a body, a path or a query', async () => {
      const body = await call({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { 'content-type': 'application/json' },
        payload: '{"name":"bad\\u0000name","description":"","consumption":[],"bundles":[]}',
      });
      expectError(body, 400, 'validation_failed');
      expect(JSON.parse(body.body).message).toContain('body.name');
      expectError(await call({ method: 'GET', url: '/v1/customers/nul%00customer/credit-balances' }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: '/v1/credit-products?x=%00' }), 400, 'validation_failed');
    });

    it('answers a lone surrogate (which PostgreSQL cannot store) with 400, in a value or a key', async () => {
      for (const payload of [
        '{"name":"bad\\udc00","description":"","consumption":[],"bundles":[]}',
        '{"name":"x","description":"","consumption":[{"event":"e","credits":"1","where":{"k\\ud83d":"v"}}],"bundles":[]}',
      ]) {
        const response = await call({ method: 'POST', url: '/v1/credit-products', headers: { 'content-type': 'application/json' }, payload });
        expectError(response, 400, 'validation_failed');
        expect(JSON.parse(response.body).message).toMatch(/lone surrogate/);
      }
    });

    it('answers a deeply nested body with 4xx, not a stack overflow', async () => {
      const depth = 20_000;
      const response = await call({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { 'content-type': 'application/json' },
        payload: `${'['.repeat(depth)}${']'.repeat(depth)}`,
      });
      expect(response.statusCode).toBeGreaterThanOrEqual(400);
      expect(response.statusCode).toBeLessThan(500);
    });

    it('answers a body over the limit with 413', async () => {
      const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'x', description: 'y'.repeat(70_000) } });
      expectError(response, 413, 'payload_too_large');
    });

    it('answers a body that is not JSON with 415', async () => {
      const response = await call({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { 'content-type': 'text/plain' },
        payload: 'name=x',
      });
      expectError(response, 415, 'unsupported_media_type');
    });

    it('answers schema violations with 400 naming the field', async () => {
      const unknownField = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'x', colour: 'red' } });
      expectError(unknownField, 400, 'validation_failed');
      expect(unknownField.json().message).toContain('colour');

      const missing = await call({ method: 'POST', url: '/v1/credit-products', payload: {} });
      expectError(missing, 400, 'validation_failed');
      expect(missing.json().message).toContain('name');

      const tooLong = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'x'.repeat(257) } });
      expectError(tooLong, 400, 'validation_failed');

      const noBody = await call({ method: 'POST', url: '/v1/credit-products' });
      expectError(noBody, 400, 'validation_failed');
    });
  });

  describe('credit products', () => {
    const rules = [
      { event: 'api_call', credits: '0.5' },
      { event: 'tokens', credits: '0.001', perUnitOf: 'count', where: { model: 'large' } },
    ];
    const bundles = [{ id: 'starter', credits: '1000', price: { amount: '9.99', currency: 'EUR' } }];

    it('creates, reads, lists and changes a product', async () => {
      const id = `prod_${randomUUID()}`;
      const created = await call({
        method: 'POST',
        url: '/v1/credit-products',
        payload: { id, name: 'API credits', description: 'For the API', consumption: rules, lowBalanceThreshold: '100.0', bundles },
      });
      expect(created.statusCode).toBe(201);
      // A bundle is a purchase option unless the product says otherwise.
      const product = { id, name: 'API credits', description: 'For the API', consumption: rules, lowBalanceThreshold: '100', bundles: bundles.map((bundle) => ({ ...bundle, purchaseOption: true })), revision: 1 };
      expect(created.json()).toEqual(product);

      expect((await call({ method: 'GET', url: `/v1/credit-products/${id}` })).json()).toEqual(product);
      const list = await call({ method: 'GET', url: '/v1/credit-products' });
      expect(list.json().items).toContainEqual(product);

      const patched = await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { name: 'Renamed', lowBalanceThreshold: null } });
      expect(patched.statusCode).toBe(200);
      expect(patched.json()).toEqual({ ...product, name: 'Renamed', lowBalanceThreshold: null, revision: 2 });
      expect((await call({ method: 'GET', url: `/v1/credit-products/${id}` })).json().name).toBe('Renamed');
    });

    it('keeps every version of a product, newest first, one per change that changes something', async () => {
      const id = `prod_${randomUUID()}`;
      const created = (await call({ method: 'POST', url: '/v1/credit-products', payload: { id, name: 'API credits', consumption: rules } })).json();
      // Made with the second, unnamed key: each revision names the key that made it.
      const repriced = (
        await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { consumption: [{ event: 'api_call', credits: '0.75' }] }, headers: { authorization: `Bearer ${SECOND_KEY}` } })
      ).json();
      // The same values again: not a change, no revision.
      expect((await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { consumption: [{ event: 'api_call', credits: '0.750' }] } })).statusCode).toBe(200);
      const renamed = (await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { name: 'Calls' } })).json();

      const all = await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions` });
      expect(all.statusCode).toBe(200);
      const body = all.json<{ items: Array<{ revision: number; changedAt: string; changedBy: unknown; product: unknown }>; next: string | null }>();
      expect(body.next).toBeNull();
      const ops = { keyId: keyIdOf(KEY), keyName: 'ops' };
      expect(body.items.map((item) => [item.revision, item.changedBy, item.product])).toEqual([
        [3, ops, renamed],
        [2, { keyId: keyIdOf(SECOND_KEY), keyName: null }, repriced],
        [1, ops, created],
      ]);
      const times = body.items.map((item) => Date.parse(item.changedAt));
      expect(times).toEqual([...times].sort((a, b) => b - a));

      const first = (await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?limit=2` })).json();
      expect(first.items.map((item: { revision: number }) => item.revision)).toEqual([3, 2]);
      expect(first.next).toBe('2');
      const rest = (await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?limit=2&before=2` })).json();
      expect(rest).toEqual({ items: [body.items[2]], next: null });
      expect((await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?before=999999999999999999` })).json().items).toHaveLength(3);
      expectError(await call({ method: 'GET', url: '/v1/credit-products/nope/revisions' }), 404, 'product_not_found');
      expectError(await call({ method: 'GET', url: '/v1/credit-products/nope/revisions?before=5' }), 404, 'product_not_found');
      // Past the oldest revision of a product that exists: an empty page, not a 404.
      expect((await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?before=1` })).json()).toEqual({ items: [], next: null });
      expectError(await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?before=-1` }), 400, 'validation_failed');
    });

    it('numbers concurrent changes of a product apart, each with its own revision', async () => {
      const { id } = await createProduct();
      const names = Array.from({ length: 8 }, (_, index) => `Name ${index}`);
      const answers = await Promise.all(names.map((name) => call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { name } })));
      expect(answers.map((answer) => answer.statusCode)).toEqual(names.map(() => 200));
      const { items } = (await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions` })).json<{ items: Array<{ revision: number; product: { name: string } }> }>();
      expect(items.map((item) => item.revision)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
      expect(items.slice(0, 8).map((item) => item.product.name).sort()).toEqual(names);
      // The newest revision is the product as it stands.
      expect((await call({ method: 'GET', url: `/v1/credit-products/${id}` })).json().name).toBe(items[0]!.product.name);
    });

    it('gives a product without an id a generated one, and defaults the optional fields', async () => {
      const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'Minimal' } });
      expect(response.statusCode).toBe(201);
      expect(response.json()).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Minimal',
        description: '',
        consumption: [],
        lowBalanceThreshold: null,
        bundles: [],
        revision: 1,
      });
    });

    it('answers 409 for a taken id and 404 for an unknown one', async () => {
      const { id } = await createProduct();
      expectError(await call({ method: 'POST', url: '/v1/credit-products', payload: { id, name: 'Again' } }), 409, 'product_already_exists');
      expectError(await call({ method: 'GET', url: '/v1/credit-products/nope' }), 404, 'product_not_found');
      expectError(await call({ method: 'PATCH', url: '/v1/credit-products/nope', payload: { name: 'x' } }), 404, 'product_not_found');
    });

    it('refuses invalid products with 400', async () => {
      const invalid: Array<[Record<string, unknown>, string]> = [
        [{ id: '-starts-with-dash' }, 'validation_failed'],
        [{ consumption: [{ event: 'api_call', credits: 'a lot' }] }, 'validation_failed'],
        [{ consumption: [{ event: 'api_call', credits: 1 }] }, 'validation_failed'],
        [{ consumption: [{ event: 'api_call', credits: '-1' }] }, 'validation_failed'],
        [{ consumption: [{ event: 'api_call', credits: '1.1234567' }] }, 'validation_failed'],
        [{ lowBalanceThreshold: '1e3' }, 'validation_failed'],
        [{ bundles: [{ id: 'b', credits: '10', price: { amount: '1', currency: 'eur' } }] }, 'validation_failed'],
        [{ bundles: [{ id: 'b', credits: '0', price: { amount: '1', currency: 'EUR' } }] }, 'invalid_amount'],
        [{ bundles: [bundles[0], bundles[0]] }, 'validation_failed'],
        [{ name: '   ' }, 'validation_failed'],
      ];
      for (const [body, error] of invalid) {
        const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'Invalid', ...body } });
        expectError(response, 400, error);
      }
      const { id } = await createProduct();
      expectError(await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: {} }), 400, 'validation_failed');
      expectError(await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { id: 'other' } }), 400, 'validation_failed');
    });
  });

  describe('credit balances', () => {
    it('opens a balance, serves it from the read model and lists it under the customer', async () => {
      const product = await createProduct({ name: 'Tokens', lowBalanceThreshold: '50' });
      const customerId = `cus_${randomUUID()}`;
      const opened = await openBalance(product.id, { startingBalance: '120.50' }, customerId);
      expect(opened).toEqual({
        id: expect.any(String),
        customerId,
        productId: product.id,
        name: 'Tokens',
        balance: '120.5',
        held: '0',
        available: '120.5',
        overdraftLimit: '0',
        lowBalanceThreshold: '50',
        belowThreshold: false,
        updatedAt: expect.any(String),
        position: expect.stringMatching(/^[1-9][0-9]*$/),
        revision: expect.stringMatching(/^[0-9]+$/),
      });

      const read = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual(opened);

      const list = await call({ method: 'GET', url: `/v1/customers/${customerId}/credit-balances?consistent=true` });
      expect(list.json()).toEqual({ items: [opened], next: null });
    });

    it('takes the name and threshold given, over the product’s', async () => {
      const product = await createProduct({ lowBalanceThreshold: '50' });
      const named = await openBalance(product.id, { name: 'Team credits', lowBalanceThreshold: '10' });
      expect(named).toMatchObject({ name: 'Team credits', lowBalanceThreshold: '10', balance: '0', belowThreshold: true });
      const none = await openBalance(product.id, { lowBalanceThreshold: null });
      expect(none).toMatchObject({ lowBalanceThreshold: null, belowThreshold: false });
    });

    it('answers 409 for a second balance of the same product and 404 for an unknown product or balance', async () => {
      const product = await createProduct();
      const customerId = `cus_${randomUUID()}`;
      await openBalance(product.id, {}, customerId);
      const second = await call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId: product.id } });
      expectError(second, 409, 'balance_already_exists');
      const unknownProduct = await call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId: 'nope' } });
      expectError(unknownProduct, 404, 'product_not_found');
      expectError(await call({ method: 'GET', url: '/v1/credit-balances/nope' }), 404, 'balance_not_found');
      expectError(await call({ method: 'GET', url: '/v1/credit-balances/nope?consistent=true' }), 404, 'balance_not_found');
      expectError(await call({ method: 'PATCH', url: '/v1/credit-balances/nope', payload: { name: 'x' } }), 404, 'balance_not_found');
      expect((await call({ method: 'GET', url: `/v1/customers/cus_${randomUUID()}/credit-balances` })).json()).toEqual({ items: [], next: null });
    });

    it('refuses invalid balance requests with 400', async () => {
      const product = await createProduct();
      const url = `/v1/customers/cus_${randomUUID()}/credit-balances`;
      for (const body of [
        { productId: product.id, startingBalance: '-5' },
        { productId: product.id, startingBalance: 5 },
        { productId: product.id, extra: true },
        { productId: product.id, name: '' },
        {},
      ]) {
        expectError(await call({ method: 'POST', url, payload: body }), 400, 'validation_failed');
      }
      expectError(await call({ method: 'POST', url, payload: { productId: product.id, name: '  ' } }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: `${url}?consistent=yes` }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: `/v1/credit-balances/${'x'.repeat(200)}` }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: `/v1/customers/${'c'.repeat(257)}/credit-balances` }), 400, 'validation_failed');
      expect((await call({ method: 'GET', url: `/v1/customers/${'c'.repeat(256)}/credit-balances` })).statusCode).toBe(200);
    });

    it('changes the name and threshold, and says when the balance is below it', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '20' });
      const patched = await call({ method: 'PATCH', url: `/v1/credit-balances/${opened.id}`, payload: { name: 'Renamed', lowBalanceThreshold: '25' } });
      expect(patched.statusCode).toBe(200);
      expect(patched.json()).toMatchObject({ id: opened.id, name: 'Renamed', lowBalanceThreshold: '25', belowThreshold: true, balance: '20' });
      expect(BigInt(patched.json().position)).toBeGreaterThan(BigInt(opened.position));

      // The same values again change nothing and answer the current state.
      const same = await call({ method: 'PATCH', url: `/v1/credit-balances/${opened.id}`, payload: { name: 'Renamed' } });
      expect(same.json()).toEqual(patched.json());

      const read = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` });
      expect(read.json()).toEqual(patched.json());

      const cleared = await call({ method: 'PATCH', url: `/v1/credit-balances/${opened.id}`, payload: { lowBalanceThreshold: null } });
      expect(cleared.json()).toMatchObject({ lowBalanceThreshold: null, belowThreshold: false });
      expectError(await call({ method: 'PATCH', url: `/v1/credit-balances/${opened.id}`, payload: {} }), 400, 'validation_failed');
    });
  });

  describe('top-ups and deductions', () => {
    it('answers a reason holding a lone surrogate (which PostgreSQL cannot store) with 400, and writes nothing', async () => {
      const product = await createProduct({ lowBalanceThreshold: '10' });
      const opened = await openBalance(product.id, { startingBalance: '15' });
      for (const kind of ['top-ups', 'deductions']) {
        const response = await call({
          method: 'POST',
          url: `/v1/credit-balances/${opened.id}/${kind}`,
          headers: { 'content-type': 'application/json' },
          payload: '{"credits":"1","reason":"bad\\ud800"}',
        });
        expectError(response, 400, 'validation_failed');
        expect(JSON.parse(response.body).message).toBe('body.reason is not well-formed Unicode (it holds a lone surrogate), which is not accepted');
      }
      const ledger = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger` });
      // The opening and its starting balance only.
      expect(ledger.json<{ items: unknown[] }>().items).toHaveLength(2);
    });

    it('records them and answers the entry and the balance after', async () => {
      const product = await createProduct({ lowBalanceThreshold: '10' });
      const opened = await openBalance(product.id, { startingBalance: '15' });

      const topUp = await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/top-ups`, payload: { credits: '5.25', reason: 'goodwill' } });
      expect(topUp.statusCode).toBe(201);
      expect(topUp.headers['idempotent-replayed']).toBe('false');
      const topUpBody = topUp.json<ChangeResponse>();
      expect(topUpBody.entry).toEqual({
        id: expect.any(String),
        type: 'CreditToppedUp',
        credits: '5.25',
        balanceAfter: '20.25',
        heldAfter: '0',
        holdId: null,
        source: 'manual',
        reason: 'goodwill',
        usageEventId: null,
        usageEvent: null,
        quantity: null,
        occurredAt: expect.any(String),
        recordedAt: expect.any(String),
        revision: expect.any(String),
        position: expect.any(String),
        purchase: null,
        grant: null,
        refund: null,
        refundedBy: null,
        // The key that asked for it, by id and configured name.
        actor: { kind: 'key', keyId: keyIdOf(KEY), keyName: 'ops' },
      });
      expect(topUpBody.balance).toMatchObject({ id: opened.id, balance: '20.25', belowThreshold: false, position: topUpBody.entry.position });

      const deduction = await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/deductions`, payload: { credits: '30' }, headers: { authorization: `Bearer ${SECOND_KEY}` } });
      expect(deduction.statusCode).toBe(201);
      const deductionBody = deduction.json<ChangeResponse>();
      expect(deductionBody.entry).toMatchObject({
        type: 'CreditConsumed',
        credits: '30',
        balanceAfter: '-9.75',
        source: 'manual',
        reason: null,
        actor: { kind: 'key', keyId: keyIdOf(SECOND_KEY), keyName: null },
      });
      // The deduction crossed the threshold and zero: the warnings follow the entry, and the balance reflects them.
      expect(deductionBody.balance).toMatchObject({ balance: '-9.75', belowThreshold: true });
      expect(BigInt(deductionBody.balance.position)).toBeGreaterThan(BigInt(deductionBody.entry.position));

      const read = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` });
      expect(read.json()).toEqual(deductionBody.balance);
    });

    it('refuses amounts that are not positive decimal strings, and unknown balances', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id);
      for (const url of [`/v1/credit-balances/${opened.id}/top-ups`, `/v1/credit-balances/${opened.id}/deductions`]) {
        for (const credits of ['-1', '1.0000001', 'ten', '', 10, null, '12345678901234567']) {
          expectError(await call({ method: 'POST', url, payload: { credits } }), 400, 'validation_failed');
        }
        expectError(await call({ method: 'POST', url, payload: { credits: '0' } }), 400, 'invalid_amount');
        expectError(await call({ method: 'POST', url, payload: { credits: '1', reason: 'r'.repeat(501) } }), 400, 'validation_failed');
        expectError(await call({ method: 'POST', url, payload: { credits: '1' }, headers: { 'idempotency-key': 'has space' } }), 400, 'validation_failed');
      }
      expectError(await call({ method: 'POST', url: '/v1/credit-balances/nope/top-ups', payload: { credits: '1' } }), 404, 'balance_not_found');
      expectError(await call({ method: 'POST', url: '/v1/credit-balances/nope/deductions', payload: { credits: '1' } }), 404, 'balance_not_found');
    });

    it.each(['top-ups', 'deductions'])('honours Idempotency-Key on %s', async (operation) => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '100' });
      const url = `/v1/credit-balances/${opened.id}/${operation}`;
      const key = `key-${randomUUID()}`;

      const first = await call({ method: 'POST', url, payload: { credits: '10', reason: 'once' }, headers: { 'idempotency-key': key } });
      expect(first.statusCode).toBe(201);
      // A change in between: the replay must still answer the first result, not the state now.
      await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/top-ups`, payload: { credits: '1' } });
      const ledgerBefore = (await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger` })).json();

      // The same amount spelled differently, keys in another order: the same request.
      const again = await call({
        method: 'POST',
        url,
        headers: { 'idempotency-key': key, 'content-type': 'application/json' },
        payload: '{"reason":"once","credits":"10.000"}',
      });
      expect(again.statusCode).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual(first.json());
      expect((await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger` })).json()).toEqual(ledgerBefore);

      for (const payload of [{ credits: '11', reason: 'once' }, { credits: '10' }, { credits: '10', reason: 'twice' }]) {
        expectError(await call({ method: 'POST', url, payload, headers: { 'idempotency-key': key } }), 409, 'idempotency_key_reused');
      }
      expect((await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger` })).json()).toEqual(ledgerBefore);

      // Without a key every request is a new one.
      const plain = { credits: '1' };
      await call({ method: 'POST', url, payload: plain });
      await call({ method: 'POST', url, payload: plain });
      const ledgerAfter = (await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger` })).json();
      expect(ledgerAfter.items.length).toBe(ledgerBefore.items.length + 2);
    });

    it('keeps a key of one balance apart from the same key on another', async () => {
      const product = await createProduct();
      const a = await openBalance(product.id);
      const b = await openBalance(product.id);
      const headers = { 'idempotency-key': 'shared-key' };
      const onA = await call({ method: 'POST', url: `/v1/credit-balances/${a.id}/top-ups`, payload: { credits: '3' }, headers });
      const onB = await call({ method: 'POST', url: `/v1/credit-balances/${b.id}/top-ups`, payload: { credits: '4' }, headers });
      expect([onA.statusCode, onB.statusCode]).toEqual([201, 201]);
      expect([onA.json().balance.balance, onB.json().balance.balance]).toEqual(['3', '4']);
    });
  });

  describe('refunds', () => {
    /** A balance of `startingBalance` and a charge (a manual deduction, a CreditConsumed) of `charged` on it. */
    async function chargedBalance(startingBalance: string, charged: string): Promise<{ balanceId: string; chargeId: string; openingId: string }> {
      const balanceId = (await openBalance((await createProduct()).id, { startingBalance })).id;
      const deducted = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/deductions`, payload: { credits: charged, reason: 'render 7' } });
      expect(deducted.statusCode).toBe(201);
      const ledger = await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger` });
      const opening = ledger.json<{ items: LedgerEntryView[] }>().items.find((entry) => entry.type === 'CreditToppedUp')!;
      return { balanceId, chargeId: deducted.json<ChangeResponse>().entry.id, openingId: opening.id };
    }

    const refund = (balanceId: string, payload: Record<string, unknown>) => call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/refunds`, payload });

    it('gives back part of a charge once, as a top-up naming it; the same request again finds it, another is refused', async () => {
      const { balanceId, chargeId } = await chargedBalance('10', '4');
      const first = await refund(balanceId, { entryId: chargeId, credits: '1.50', reason: 'render failed' });
      expect(first.statusCode).toBe(201);
      expect(first.headers['idempotent-replayed']).toBe('false');
      const { entry, balance } = first.json<ChangeResponse>();
      expect(entry).toMatchObject({ type: 'CreditToppedUp', source: 'refund', credits: '1.5', balanceAfter: '7.5', reason: 'render failed', refund: { entryId: chargeId } });
      expect(balance.balance).toBe('7.5');

      // The same request, the amount spelled differently and the id in capitals: the first refund, nothing more.
      const again = await refund(balanceId, { entryId: chargeId.toUpperCase(), credits: '1.5', reason: 'render failed' });
      expect(again.statusCode).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json<ChangeResponse>().entry.id).toBe(entry.id);
      const other = await refund(balanceId, { entryId: chargeId, credits: '2.5' });
      expect(other.statusCode).toBe(409);
      // Says what the first refund gave back, so the caller knows what stands.
      expect(other.json()).toEqual({ error: 'already_refunded', message: `entry "${chargeId}" was refunded already, by another request: 1.5 credits were given back` });

      const ledger = (await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger` })).json<{ items: LedgerEntryView[] }>().items;
      expect(ledger.filter((item) => item.source === 'refund')).toEqual([expect.objectContaining({ id: entry.id, refund: { entryId: chargeId } })]);
      // The charge says it was refunded, and by which entry, on every read of the ledger.
      expect(ledger.find((item) => item.id === chargeId)).toMatchObject({ refund: null, source: 'manual', refundedBy: entry.id });
      expect(ledger.filter((item) => item.refundedBy !== null)).toHaveLength(1);
      const csv = await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger.csv` });
      const [header, ...rows] = csv.body.trim().split('\r\n').map((line) => line.split(','));
      const column = (name: string) => header!.indexOf(name);
      expect(rows.find((row) => row[0] === chargeId)![column('refundedBy')]).toBe(entry.id);
      expect(rows.find((row) => row[0] === entry.id)![column('refundEntryId')]).toBe(chargeId);
    });

    it('gives back all of a charge when no amount is named, and never more than it took', async () => {
      const { balanceId, chargeId } = await chargedBalance('10', '4');
      const tooMuch = await refund(balanceId, { entryId: chargeId, credits: '4.000001' });
      expect(tooMuch.statusCode).toBe(400);
      expect(tooMuch.json<{ message: string }>().message).toContain('at most the 4 credits');
      const whole = await refund(balanceId, { entryId: chargeId });
      expect(whole.statusCode).toBe(201);
      expect(whole.json<ChangeResponse>().entry).toMatchObject({ credits: '4', balanceAfter: '10', reason: null });
      // No amount is all of it: the same refund as one naming the whole amount, either way round.
      for (const payload of [{ entryId: chargeId, credits: '4.0' }, { entryId: chargeId }]) {
        const same = await refund(balanceId, payload);
        expect([same.statusCode, same.headers['idempotent-replayed'], same.json<Partial<ChangeResponse>>().entry?.id]).toEqual([201, 'true', whole.json<ChangeResponse>().entry.id]);
      }
      const named = await chargedBalance('10', '4');
      const first = await refund(named.balanceId, { entryId: named.chargeId, credits: '4' });
      const unnamed = await refund(named.balanceId, { entryId: named.chargeId });
      expect([unnamed.statusCode, unnamed.headers['idempotent-replayed'], unnamed.json<Partial<ChangeResponse>>().entry?.id]).toEqual([201, 'true', first.json<ChangeResponse>().entry.id]);
    });

    it('refunds only a charge of the balance itself', async () => {
      const { balanceId, openingId } = await chargedBalance('10', '4');
      const elsewhere = await chargedBalance('5', '1');
      const notACharge = await refund(balanceId, { entryId: openingId });
      expect(notACharge.statusCode).toBe(409);
      expect(notACharge.json()).toMatchObject({ error: 'entry_not_refundable', message: expect.stringContaining('CreditToppedUp') });
      const othersCharge = await refund(balanceId, { entryId: elsewhere.chargeId });
      expect(othersCharge.statusCode).toBe(404);
      expect(othersCharge.json()).toMatchObject({ error: 'ledger_entry_not_found' });
      expect((await refund(balanceId, { entryId: randomUUID() })).json()).toMatchObject({ error: 'ledger_entry_not_found' });
      expect((await refund(`bal_${randomUUID()}`, { entryId: elsewhere.chargeId })).statusCode).toBe(404);
      const notAnId = await refund(balanceId, { entryId: 'render 7' });
      expect(notAnId.statusCode).toBe(400);
      expect(notAnId.json<{ message: string }>().message).toContain('entryId');
      // ajv's uuid format admits a urn:uuid: prefix, which the event store does not: 400, not 500.
      const urn = await refund(balanceId, { entryId: `urn:uuid:${elsewhere.chargeId}` });
      expect([urn.statusCode, urn.json<{ message: string }>().message]).toEqual([400, expect.stringContaining('entryId')]);
      // Nothing of that changed the ledger.
      const ledger = (await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger` })).json<{ items: LedgerEntryView[] }>().items;
      expect(ledger.some((item) => item.source === 'refund')).toBe(false);
    });

    it('lets one of two different refunds of a charge asked at once through', async () => {
      const { balanceId, chargeId } = await chargedBalance('10', '4');
      const answers = await Promise.all([refund(balanceId, { entryId: chargeId, credits: '1' }), refund(balanceId, { entryId: chargeId, credits: '3' })]);
      expect(answers.map((answer) => answer.statusCode).sort()).toEqual([201, 409]);
      const ledger = (await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger` })).json<{ items: LedgerEntryView[] }>().items;
      const refunds = ledger.filter((item) => item.source === 'refund');
      expect(refunds).toHaveLength(1);
      expect(refunds[0]!.balanceAfter).toBe(String(6 + Number(refunds[0]!.credits)));
    });
  });

  describe('ledger', () => {
    it('pages through every entry, newest first, with a cursor', async () => {
      const product = await createProduct({ lowBalanceThreshold: '5' });
      const opened = await openBalance(product.id, { startingBalance: '10' });
      const url = `/v1/credit-balances/${opened.id}`;
      for (let i = 1; i <= 6; i += 1) {
        await call({ method: 'POST', url: `${url}/${i % 2 === 0 ? 'top-ups' : 'deductions'}`, payload: { credits: String(i) } });
      }
      await call({ method: 'PATCH', url, payload: { name: 'Renamed' } });

      const all = (await call({ method: 'GET', url: `${url}/ledger` })).json();
      expect(all.next).toBeNull();
      const revisions = all.items.map((entry: LedgerEntryView) => Number(entry.revision));
      expect(revisions).toEqual([...revisions].sort((x, y) => y - x));
      expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => revisions.length - 1 - i));
      const types = all.items.map((entry: LedgerEntryView) => entry.type);
      expect(types[0]).toBe('CreditBalanceSettingsChanged');
      expect(types.at(-1)).toBe('CreditBalanceOpened');
      expect(types.at(-2)).toBe('CreditToppedUp');
      // 10 -1 +2 -3 = 8, +4 = 12, -5 = 7, +6 = 13: no warning; every entry has all fields, null where none apply.
      expect(all.items.at(-1)).toMatchObject({ credits: null, balanceAfter: null, source: null, reason: null });
      expect(all.items.at(-2)).toMatchObject({ credits: '10', balanceAfter: '10', source: 'starting' });
      expect(all.items[1]).toMatchObject({ type: 'CreditToppedUp', credits: '6', balanceAfter: '13' });

      const pages: LedgerEntryView[][] = [];
      let before: string | null | undefined;
      do {
        const query = before === undefined ? '?limit=3' : `?limit=3&before=${before}`;
        const page = await call({ method: 'GET', url: `${url}/ledger${query}` });
        expect(page.statusCode).toBe(200);
        pages.push(page.json().items);
        before = page.json().next;
      } while (before !== null);
      expect(pages.map((page) => page.length)).toEqual([3, 3, 3]);
      expect(pages.flat()).toEqual(all.items);

      const pastTheEnd = await call({ method: 'GET', url: `${url}/ledger?before=0` });
      expect(pastTheEnd.json()).toEqual({ items: [], next: null });
    });

    it('records warnings when a deduction crosses the threshold and zero', async () => {
      const product = await createProduct({ lowBalanceThreshold: '5' });
      const opened = await openBalance(product.id, { startingBalance: '6' });
      await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/deductions`, payload: { credits: '7' } });
      const { items } = (await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger?limit=3` })).json();
      expect(items.map((entry: LedgerEntryView) => [entry.type, entry.balanceAfter])).toEqual([
        ['CreditBalanceDepleted', '-1'],
        ['LowBalanceWarned', '-1'],
        ['CreditConsumed', '-1'],
      ]);
    });

    it('refuses invalid pages and unknown balances', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id);
      for (const query of ['limit=0', 'limit=501', 'limit=ten', 'limit=1.5', 'before=-1', 'before=abc', 'before=9999999999999999999', 'other=1']) {
        expectError(await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger?${query}` }), 400, 'validation_failed');
      }
      expect((await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger?limit=500` })).statusCode).toBe(200);
      expectError(await call({ method: 'GET', url: '/v1/credit-balances/nope/ledger' }), 404, 'balance_not_found');
      expectError(await call({ method: 'GET', url: '/v1/credit-balances/nope/ledger?before=5' }), 404, 'balance_not_found');
    });

    it('exports the whole ledger as CSV, oldest first, every field of the JSON entries, formulas defused', async () => {
      const product = await createProduct({ lowBalanceThreshold: '5' });
      const opened = await openBalance(product.id, { startingBalance: '6' }, `cus/${randomUUID()} "quoted"`);
      const url = `/v1/credit-balances/${encodeURIComponent(opened.id)}`;
      await call({ method: 'POST', url: `${url}/top-ups`, payload: { credits: '1.25', reason: '=HYPERLINK("https://example.test","refund")' } });
      await call({ method: 'POST', url: `${url}/deductions`, payload: { credits: '9', reason: 'a reason, with "quotes"\nand a line break' } });
      const json = (await call({ method: 'GET', url: `${url}/ledger` })).json<{ items: LedgerEntryView[] }>().items.reverse();

      const csv = await call({ method: 'GET', url: `${url}/ledger.csv` });
      expect(csv.statusCode).toBe(200);
      expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(csv.headers['content-disposition']).toBe(`attachment; filename="ledger-${opened.id.replace(/[^A-Za-z0-9._-]/g, '_')}.csv"`);
      expect(csv.body.split('\r\n')[0]).toBe(LEDGER_CSV_COLUMNS.join(','));
      expect(csv.body.endsWith('\r\n')).toBe(true);
      const rows = parseCsv(csv.body, { columns: true }) as Record<string, string>[];
      expect(rows.map((row) => row.type)).toEqual(['CreditBalanceOpened', 'CreditToppedUp', 'CreditToppedUp', 'CreditConsumed', 'LowBalanceWarned', 'CreditBalanceDepleted']);
      // Each row is its JSON entry: nulls empty, purchase, grant and refund spread (null here), the actor
      // spread, the formula behind a '.
      rows.forEach((row, index) => {
        const entry = json[index]!;
        const actor = entry.actor as { kind: string; keyId?: string; keyName?: string | null } | null;
        const actorColumns: Record<string, unknown> = { actorKind: actor?.kind ?? null, actorKeyId: actor?.keyId ?? null, actorKeyName: actor?.keyName ?? null };
        expect(row).toEqual(
          Object.fromEntries(
            LEDGER_CSV_COLUMNS.map((column) => {
              const value =
                column.startsWith('purchase') || column.startsWith('grant') || column === 'refundEntryId'
                  ? null
                  : column in actorColumns
                    ? actorColumns[column]
                    : (entry as unknown as Record<string, unknown>)[column];
              return [column, value === null ? '' : spreadsheetSafe(String(value))];
            }),
          ),
        );
      });
      expect(rows[2]!.reason).toBe(`'=HYPERLINK("https://example.test","refund")`);
      expect(rows[3]!.reason).toBe('a reason, with "quotes"\nand a line break');
      expect(json[2]!.reason).toBe('=HYPERLINK("https://example.test","refund")');
      expect(rows.map((row) => row.balanceAfter)).toEqual(['', '6', '7.25', '-1.75', '-1.75', '-1.75']);
      // Every change here was asked for with the key named ops, the warnings by the deduction that caused them.
      expect(rows.map((row) => [row.actorKind, row.actorKeyName])).toEqual(rows.map(() => ['key', 'ops']));
    });

    it('keeps the CSV rows whose occurredAt falls in [from, to), and refuses bad ranges and unknown balances', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '6' });
      const url = `/v1/credit-balances/${opened.id}/ledger.csv`;
      const rowsOf = async (query: string) => {
        const response = await call({ method: 'GET', url: `${url}${query}` });
        expect(response.statusCode).toBe(200);
        return (parseCsv(response.body, { columns: true }) as Record<string, string>[]).map((row) => row.type);
      };
      const all = parseCsv((await call({ method: 'GET', url })).body, { columns: true }) as Record<string, string>[];
      const openedAt = all[0]!.occurredAt!;
      const justAfter = new Date(Date.parse(openedAt) + 1).toISOString();
      expect(await rowsOf(`?from=${openedAt}`)).toEqual(['CreditBalanceOpened', 'CreditToppedUp']);
      expect(await rowsOf(`?to=${openedAt}`)).toEqual([]);
      expect(await rowsOf(`?from=${justAfter}`)).toEqual(all.slice(1).filter((row) => row.occurredAt! >= justAfter).map((row) => row.type));
      expectError(await call({ method: 'GET', url: `${url}?from=${justAfter}&to=${openedAt}` }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: `${url}?from=yesterday` }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: `${url}?format=xlsx` }), 400, 'validation_failed');
      expectError(await call({ method: 'GET', url: '/v1/credit-balances/nope/ledger.csv' }), 404, 'balance_not_found');
    });

    it('reads the ledger oldest first a page at a time, to the end', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '1' });
      for (let i = 0; i < 4; i += 1) await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/top-ups`, payload: { credits: '1' } });
      const history = createLedgerHistory({ ledger, balanceRegistry });
      const pages: string[][] = [];
      for await (const page of history.chronological(opened.id, 2, 'keyHolder')) pages.push(page.map((entry) => entry.revision));
      expect(pages).toEqual([['0', '1'], ['2', '3'], ['4', '5']]);
      await expect(history.chronological('nope', 2, 'keyHolder').next()).rejects.toThrow('no credit balance with id "nope"');
    });

    it('states a period as recorded: the balance before it, what was added and taken by source, the balance after', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '10' });
      const url = `/v1/credit-balances/${opened.id}`;
      const topUp = await call({ method: 'POST', url: `${url}/top-ups`, payload: { credits: '2.5' } });
      const deduction = await call({ method: 'POST', url: `${url}/deductions`, payload: { credits: '4.000001' } });
      const held = await call({ method: 'POST', url: `${url}/holds`, headers: { 'idempotency-key': randomUUID() }, payload: { credits: '1', expiresInSeconds: 600 } });
      const refunded = await call({ method: 'POST', url: `${url}/refunds`, payload: { entryId: deduction.json<ChangeResponse>().entry.id, credits: '0.5' } });
      expect([topUp.statusCode, deduction.statusCode, held.statusCode, refunded.statusCode]).toEqual([201, 201, 201, 201]);
      const entries = (await call({ method: 'GET', url: `${url}/ledger` })).json<{ items: LedgerEntryView[] }>().items.reverse();
      const statement = async (from: string, to: string) => {
        const response = await call({ method: 'GET', url: `${url}/statement?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}` });
        expect(response.statusCode).toBe(200);
        return response.json<Record<string, unknown>>();
      };
      const afterAll = new Date(Date.parse(entries.at(-1)!.recordedAt) + 1).toISOString();

      const whole = await statement('2000-01-01T00:00:00Z', afterAll);
      expect(whole).toEqual({
        balanceId: opened.id,
        from: '2000-01-01T00:00:00.000Z',
        to: afterAll,
        opening: { balance: '0', held: '0' },
        closing: { balance: '8.999999', held: '1' },
        toppedUp: '13',
        consumed: '4.000001',
        toppedUpBySource: { starting: '10', manual: '2.5', purchase: '0', grant: '0', refund: '0.5' },
        consumedBySource: { usage: '0', manual: '4.000001', hold: '0' },
        entries: entries.length,
        firstRevision: '0',
        lastRevision: entries.at(-1)!.revision,
      });
      // What the balance serves, once its read model has caught up, is the statement's closing.
      expect((await call({ method: 'GET', url: `${url}?consistent=true` })).json()).toMatchObject({ balance: '8.999999', held: '1' });

      // From the deduction's recording on (the top-up's balanceAfter opens it), to before the refund.
      const deductionEntry = entries.find((entry) => entry.id === deduction.json<ChangeResponse>().entry.id)!;
      const refundEntry = entries.find((entry) => entry.source === 'refund')!;
      const middle = await statement(deductionEntry.recordedAt, refundEntry.recordedAt);
      expect(middle).toMatchObject({ opening: { balance: '12.5', held: '0' }, closing: { balance: '8.499999', held: '1' }, toppedUp: '0', consumed: '4.000001' });
      expect(middle.firstRevision).toBe(deductionEntry.revision);
      // Asked again with the statement starts in the deps: the same answer (which starts are kept
      // and read is statementStarts.int.spec.ts's).
      expect(await statement(deductionEntry.recordedAt, refundEntry.recordedAt)).toEqual(middle);

      // Before the balance was opened: nothing.
      expect(await statement('2000-01-01T00:00:00Z', '2000-02-01T00:00:00Z')).toMatchObject({ opening: { balance: '0' }, closing: { balance: '0' }, entries: 0, firstRevision: null });

      // Without from, the calendar month (UTC) the period ends in; without to, until now.
      const march = await call({ method: 'GET', url: `${url}/statement?to=2000-04-01T00:00:00Z` });
      expect(march.json()).toMatchObject({ from: '2000-03-01T00:00:00.000Z', to: '2000-04-01T00:00:00.000Z', entries: 0 });
      // A year below 100 is that year, not 1900 and after (Date.UTC's reading).
      const early = await call({ method: 'GET', url: `${url}/statement?to=0050-06-15T00:00:00Z` });
      expect([early.statusCode, early.json()]).toEqual([200, expect.objectContaining({ from: '0050-06-01T00:00:00.000Z', to: '0050-06-15T00:00:00.000Z', entries: 0 })]);
      const monthSoFar = (await call({ method: 'GET', url: `${url}/statement` })).json<{ from: string; to: string; closing: { balance: string } }>();
      expect(monthSoFar.from).toBe(`${monthSoFar.to.slice(0, 7)}-01T00:00:00.000Z`);
      expect(Date.parse(monthSoFar.to)).toBeGreaterThanOrEqual(Date.parse(afterAll) - 1);
      expect(monthSoFar.closing.balance).toBe('8.999999');

      for (const query of ['?from=2999-03-01T00:00:00Z', '?from=&to=2026-03-01T00:00:00Z', '?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z', '?from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z', '?from=march&to=april', `?from=2026-03-01T00:00:00Z&to=${afterAll}&x=1`]) {
        expectError(await call({ method: 'GET', url: `${url}/statement${query}` }), 400, 'validation_failed');
      }
      expectError(await call({ method: 'GET', url: `/v1/credit-balances/nope/statement?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z` }), 404, 'balance_not_found');
      // Read for nobody: a signal already aborted (the route's, once its client is gone) stops it.
      const gone = new AbortController();
      gone.abort(new Error('the client went away'));
      await expect(createLedgerHistory({ ledger, balanceRegistry }).statement(opened.id, { from: 0, to: Date.now() }, gone.signal)).rejects.toThrow('the client went away');
    });
  });

  describe('consistent reads', () => {
    it('waits for the read model, and answers 503 when it does not catch up in time', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '1' });
      expect((await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` })).json().balance).toBe('1');

      const impatient = await buildApp({ ...deps, metrics: createMetricsRegistry(), options: { consistencyTimeoutMs: 300 } });
      await projector.stop();
      try {
        const written = await call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/top-ups`, payload: { credits: '2' } });
        expect(written.json().balance.balance).toBe('3');

        // Without consistency the read model's (stale) snapshot is served.
        const stale = await impatient.inject({ method: 'GET', url: `/v1/credit-balances/${opened.id}`, headers: auth });
        expect(stale.json().balance).toBe('1');

        const refused = await impatient.inject({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true`, headers: auth });
        expectError(refused, 503, 'not_consistent');
        expect(refused.headers['retry-after']).toBe('1');
        const refusedList = await impatient.inject({
          method: 'GET',
          url: `/v1/customers/${opened.customerId}/credit-balances?consistent=true`,
          headers: auth,
        });
        expectError(refusedList, 503, 'not_consistent');
      } finally {
        await startProjector();
        await impatient.close();
      }
      const caughtUp = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` });
      expect(caughtUp.json().balance).toBe('3');
    });

    it('folds a balance the read model does not hold yet from the event store, alone and in the customer list', async () => {
      const product = await createProduct();
      const other = await createProduct();
      const customerId = `cus_${randomUUID()}`;
      const projected = await openBalance(product.id, { startingBalance: '7' }, customerId);
      await waitFor(async () => (await deps.balances.getBalance(projected.id)) !== undefined, { description: 'the first balance projected' });
      await projector.stop();
      try {
        const opened = await openBalance(other.id, { startingBalance: '4' }, customerId);
        expect(await deps.balances.getBalance(opened.id)).toBeUndefined();
        const read = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}` });
        expect(read.statusCode).toBe(200);
        expect(read.json()).toEqual(opened);
        // One balance from the read model, the other folded, in balance id order.
        const list = await call({ method: 'GET', url: `/v1/customers/${customerId}/credit-balances` });
        expect(list.statusCode).toBe(200);
        expect(list.json()).toEqual({ items: [projected, opened].sort((a, b) => (a.id < b.id ? -1 : 1)), next: null });
      } finally {
        await startProjector();
      }
    });
  });

  describe('an unreachable balance registry', () => {
    it("lists a customer's balances from the read model alone, rather than failing", async () => {
      const product = await createProduct();
      const customerId = `cus_${randomUUID()}`;
      const opened = await openBalance(product.id, {}, customerId);
      await waitFor(async () => (await deps.balances.getBalance(opened.id)) !== undefined, { description: 'the balance projected' });
      const unreachable = createUnreachablePool('api-registry-down');
      const cut = await buildApp({ ...deps, balanceRegistry: createPostgresBalanceRegistry({ pool: unreachable }), metrics: createMetricsRegistry() });
      try {
        const list = await cut.inject({ method: 'GET', url: `/v1/customers/${customerId}/credit-balances`, headers: auth });
        expect(list.statusCode).toBe(200);
        expect(list.json()).toEqual({ items: [opened], next: null });
      } finally {
        await cut.close();
        await unreachable.end();
      }
    });
  });

  describe('an unreachable PostgreSQL for the processors', () => {
    it('answers GET /v1/processors 503 with Retry-After, not 500', async () => {
      const unreachable = createUnreachablePool('api-processors-down');
      const cut = await buildApp({ ...deps, processors: () => readProcessorStatus(unreachable, eventStore), metrics: createMetricsRegistry() });
      try {
        const response = await cut.inject({ method: 'GET', url: '/v1/processors', headers: auth });
        expectError(response, 503, 'processors_unavailable');
        expect(response.headers['retry-after']).toBeDefined();
      } finally {
        await cut.close();
        await unreachable.end();
      }
    });
  });

  describe('an unreachable read model', () => {
    it('answers balance reads 503, not 500', async () => {
      // A real client of a port nothing listens on, failing at once instead of queueing.
      const unreachable = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const cut = await buildApp({ ...deps, balances: createBalanceReadModel({ redis: unreachable, keyPrefix }), metrics: createMetricsRegistry() });
      try {
        for (const url of ['/v1/credit-balances/b1', '/v1/credit-balances/b1?consistent=true', '/v1/customers/c1/credit-balances']) {
          const response = await cut.inject({ method: 'GET', url, headers: auth });
          expectError(response, 503, 'read_model_unavailable');
        }
      } finally {
        await cut.close();
        unreachable.disconnect();
      }
    });
  });

  describe('concurrency', () => {
    it('lands 100 concurrent top-ups and deductions on one balance exactly, beside another process writing to it', async () => {
      const product = await createProduct();
      const opened = await openBalance(product.id, { startingBalance: '1000' });
      const requests = Array.from({ length: 100 }, (_, i) => ({
        operation: i % 3 === 0 ? 'deductions' : 'top-ups',
        credits: `${(i % 7) + 1}.${String(i).padStart(2, '0')}`,
      }));
      // Another process (a second ledger service over the same store, as the grant scheduler or
      // a second API instance would be) writes at the same time: its appends race the API's.
      const otherProcess = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
      const otherDeductions = Array.from({ length: 20 }, (_, i) => parseCredits(`0.${String(i + 1).padStart(3, '0')}`));
      const other = (async () => {
        for (const credits of otherDeductions) {
          // Like the API's clients on a 503, it tries a retriable failure again: against a
          // stream the API appends to back to back, its 20 optimistic attempts can all lose.
          for (;;) {
            try {
              await otherProcess.deduct(opened.id, { credits, reason: 'other process' }, { idempotencyKey: `other-${credits}` });
              break;
            } catch (error) {
              if (!(error instanceof TallyError && error.retriable)) throw error;
            }
          }
        }
      })();
      const responses = await Promise.all(
        requests.map(({ operation, credits }) =>
          call({ method: 'POST', url: `/v1/credit-balances/${opened.id}/${operation}`, payload: { credits } }),
        ),
      );
      await other;
      expect(responses.map((response) => response.statusCode)).toEqual(requests.map(() => 201));

      const expected =
        requests.reduce(
          (sum, { operation, credits }) => (operation === 'top-ups' ? sum + parseCredits(credits) : sum - parseCredits(credits)),
          parseCredits('1000'),
        ) - otherDeductions.reduce((sum, credits) => sum + credits, 0n);
      const { state } = await loadBalance(eventStore, opened.id);
      expect(state.status === 'open' && formatCredits(state.balance)).toBe(formatCredits(expected));

      const read = await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}?consistent=true` });
      expect(read.json().balance).toBe(formatCredits(expected));

      // Every change was decided on the balance the one before it left: none was lost or overwritten.
      const ledgerPage = (await call({ method: 'GET', url: `/v1/credit-balances/${opened.id}/ledger?limit=500` })).json();
      const changes = (ledgerPage.items as LedgerEntryView[]).filter((entry) => entry.source === 'manual').reverse();
      expect(changes).toHaveLength(120);
      let running = parseCredits('1000');
      for (const entry of changes) {
        running += (entry.type === 'CreditToppedUp' ? 1n : -1n) * parseCredits(entry.credits!);
        expect(entry.balanceAfter).toBe(formatCredits(running));
      }
    });
  });

  describe('operations', () => {
    it('lists the processors with their checkpoints, how far behind they are and who leads them', async () => {
      // An opening in the store, so a checkpoint at its start is behind.
      await openBalance((await createProduct()).id);
      const name = uniqueName('ledger-relay');
      await createPostgresCheckpointStore(db.pool).save(name, 0n);
      const head = await eventStore.headPosition();
      const lease = await tryAcquireAdvisoryLease({ pool: db.pool, name });
      try {
        const led = await call({ method: 'GET', url: '/v1/processors' });
        expect(led.statusCode).toBe(200);
        expect(BigInt(led.json().head)).toBeGreaterThanOrEqual(head);
        expect(head).toBeGreaterThan(0n);
        expect(led.json().items.find((item: { name: string }) => item.name === name)).toEqual({
          name,
          position: '0',
          behind: led.json().head,
          savedAt: expect.any(String),
          leader: { pid: expect.any(Number), applicationName: 'test-api' },
        });
      } finally {
        await lease!.release();
      }
      const free = await call({ method: 'GET', url: '/v1/processors' });
      expect(free.json().items.find((item: { name: string }) => item.name === name).leader).toBeNull();
    });

    it('reports each dependency on /health to a key, the status alone without one, 503 when one is down or the check fails', async () => {
      const up = await call({ method: 'GET', url: '/health' });
      expect(up.json()).toEqual({ status: 'up', checks: { postgres: 'up', redis: 'up' }, checkedAt: expect.any(String) });
      expect((await app.inject({ method: 'GET', url: '/health' })).json()).toEqual({ status: 'up' });

      for (const health of [
        async () => ({ postgres: 'up' as const, redis: 'down' as const }),
        async () => {
          throw new Error('boom');
        },
        () => new Promise<Record<string, 'up' | 'down'>>(() => undefined),
      ]) {
        const degraded = await buildApp({ ...deps, health, metrics: createMetricsRegistry(), options: { healthTimeoutMs: 100 } });
        const response = await degraded.inject({ method: 'GET', url: '/health' });
        expect(response.statusCode).toBe(503);
        expect(response.json().status).toBe('down');
        await degraded.close();
      }
    });

    it('shows a usage partition stalled at an undecodable batch on /health, 503; the details to a key', async () => {
      const stall = { topic: 'usage-events', partition: 4, offset: '1200', lastOffset: '1299', codec: 'zstd', reason: 'zstd batch could not be decompressed', since: '2026-03-01T12:00:00.000Z' };
      const stalled = await buildApp({ ...deps, stalledPartitions: () => [stall], metrics: createMetricsRegistry() });
      const response = await stalled.inject({ method: 'GET', url: '/health', headers: auth });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toEqual({
        status: 'down',
        checks: { postgres: 'up', redis: 'up', usagePartitions: 'down' },
        checkedAt: expect.any(String),
        stalledPartitions: [stall],
      });
      const keyless = await stalled.inject({ method: 'GET', url: '/health' });
      expect({ status: keyless.statusCode, body: keyless.json() }).toEqual({ status: 503, body: { status: 'down' } });
      await stalled.close();
    });

    it('answers /health/ready by what serving the API needs alone: up while Kafka, the registry or a usage partition is down, down without PostgreSQL or Redis', async () => {
      const stall = { topic: 'usage-events', partition: 4, offset: '1200', lastOffset: '1299', codec: 'zstd', reason: 'zstd batch could not be decompressed', since: '2026-03-01T12:00:00.000Z' };
      const kafkaDown = await buildApp({
        ...deps,
        health: async () => ({ postgres: 'up' as const, redis: 'up' as const, kafka: 'down' as const, schemaRegistry: 'down' as const }),
        stalledPartitions: () => [stall],
        metrics: createMetricsRegistry(),
      });
      try {
        // The whole process is not well...
        expect((await kafkaDown.inject({ method: 'GET', url: '/health' })).statusCode).toBe(503);
        // ...but it serves balances, holds, entitlements and top-ups.
        const ready = await kafkaDown.inject({ method: 'GET', url: '/health/ready', headers: auth });
        expect({ status: ready.statusCode, body: ready.json() }).toEqual({ status: 200, body: { status: 'up', checks: { postgres: 'up', redis: 'up' }, checkedAt: expect.any(String) } });
        expect((await kafkaDown.inject({ method: 'GET', url: '/health/ready' })).json()).toEqual({ status: 'up' });
      } finally {
        await kafkaDown.close();
      }
      for (const health of [async () => ({ postgres: 'up' as const, redis: 'down' as const, kafka: 'up' as const }), async () => ({ postgres: 'down' as const, redis: 'up' as const })]) {
        const degraded = await buildApp({ ...deps, health, metrics: createMetricsRegistry() });
        try {
          const response = await degraded.inject({ method: 'GET', url: '/health/ready' });
          expect({ status: response.statusCode, body: response.json() }).toEqual({ status: 503, body: { status: 'down' } });
        } finally {
          await degraded.close();
        }
      }
    });

    it('exposes HTTP latency by route pattern and status, and other parts’ metrics, on /metrics', async () => {
      deps.metrics.counter({ name: 'tally_test_things_total', help: 'Things.' }).inc();
      await call({ method: 'GET', url: '/v1/credit-balances/nope' });
      const response = await app.inject({ method: 'GET', url: '/metrics' });
      expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(response.body).toContain('# TYPE tally_http_request_duration_seconds histogram');
      expect(response.body).toMatch(
        /tally_http_request_duration_seconds_count\{method="GET",route="\/v1\/credit-balances\/:balanceId",status="404"\} [1-9]/,
      );
      expect(response.body).not.toContain('route="/v1/credit-balances/nope"');
      expect(response.body).toContain('tally_test_things_total 1');
    });

    it('serves the OpenAPI document with every route', async () => {
      const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
      expect(spec.openapi).toBe('3.1.0');
      expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining([
        '/health',
        '/metrics',
        '/v1/credit-balances/{balanceId}',
        '/v1/credit-balances/{balanceId}/deductions',
        '/v1/credit-balances/{balanceId}/ledger',
        '/v1/credit-balances/{balanceId}/top-ups',
        '/v1/credit-products',
        '/v1/credit-products/{productId}',
        '/v1/customers/{customerId}/credit-balances',
      ]));
      expect(Object.keys(spec.components.schemas)).toEqual(expect.arrayContaining(['CreditBalance', 'CreditProduct', 'LedgerEntry', 'Error']));
      expect(spec.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
      expect(spec.paths['/health'].get.security).toEqual([]);
      expect((await app.inject({ method: 'GET', url: '/docs' })).statusCode).toBeLessThan(400);
    });
  });
});
