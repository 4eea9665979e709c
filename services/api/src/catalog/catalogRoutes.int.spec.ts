import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'catalog-routes-key-0123456789abcdef';

/** Changes of a credit product over HTTP against PostgreSQL: concurrent ones, conditional ones, and repairs of what is stored. */
describe('credit products over HTTP', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let app: FastifyInstance;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'catalog_routes', max: 20 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    redis = new Redis(stackConfig.redisUrl);
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('catalog_routes') }),
      eventStore,
      apiKeys: [{ key: KEY, scopes: ['admin'], name: 'ops' }],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      // Portal tokens, to show that the catalog (and what is stored of it) is the operators' alone.
      web: { secret: 'catalog-routes-session-secret-0123456789' },
    });
  });

  afterAll(async () => {
    await app?.close();
    redis?.disconnect();
    await eventStore?.close();
    await db?.drop();
  });

  const call = (options: InjectOptions) => app.inject({ ...options, headers: { authorization: `Bearer ${KEY}`, ...options.headers } });

  function expectError(response: LightMyRequestResponse, statusCode: number, error: string): void {
    expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode, error });
    expect(typeof response.json().message).toBe('string');
  }

  async function createProduct(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'API credits', ...body } });
    expect(response.statusCode).toBe(201);
    return response.json();
  }

  it('keeps both of two concurrent changes to different fields, the price included', async () => {
    for (let round = 0; round < 8; round += 1) {
      const id = `concurrent_${randomUUID()}`;
      await createProduct({ id, consumption: [{ event: 'api_call', credits: '1' }] });
      const url = `/v1/credit-products/${id}`;
      const [renamed, repriced] = await Promise.all([
        call({ method: 'PATCH', url, payload: { name: `Renamed ${round}` } }),
        call({ method: 'PATCH', url, payload: { consumption: [{ event: 'api_call', credits: '2' }] } }),
      ]);
      expect([renamed.statusCode, repriced.statusCode]).toEqual([200, 200]);
      const product = (await call({ method: 'GET', url })).json();
      expect({ name: product.name, consumption: product.consumption }).toEqual({ name: `Renamed ${round}`, consumption: [{ event: 'api_call', credits: '2' }] });
      // The history never shows the price made and then undone: the newest version has both.
      const { items } = (await call({ method: 'GET', url: `${url}/revisions` })).json();
      expect(items.map((item: { revision: number }) => item.revision)).toEqual([3, 2, 1]);
      expect(items[0].product).toMatchObject({ name: `Renamed ${round}`, consumption: [{ event: 'api_call', credits: '2' }] });
    }
  });

  it('answers its revision (body and ETag), and refuses a change made against an older one with 412, changing nothing', async () => {
    const id = `conditional_${randomUUID()}`;
    const created = await call({ method: 'POST', url: '/v1/credit-products', payload: { id, name: 'Calls', consumption: [{ event: 'api_call', credits: '1' }] } });
    expect([created.json().revision, created.headers.etag]).toEqual([1, '"1"']);
    const url = `/v1/credit-products/${id}`;
    const read = await call({ method: 'GET', url });
    expect([read.json().revision, read.headers.etag]).toEqual([1, '"1"']);

    const changed = await call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: { consumption: [{ event: 'api_call', credits: '3' }] } });
    expect(changed.statusCode).toBe(200);
    expect([changed.json().revision, changed.headers.etag]).toEqual([2, '"2"']);

    // A second client still holding revision 1: refused, and the product is as the first left it.
    const stale = await call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: { name: 'Stale' } });
    expectError(stale, 412, 'product_changed');
    expect(stale.json().message).toMatch(/revision 2/);
    expect((await call({ method: 'GET', url })).json()).toMatchObject({ name: 'Calls', revision: 2, consumption: [{ event: 'api_call', credits: '3' }] });
    expect((await call({ method: 'GET', url: `${url}/revisions` })).json().items).toHaveLength(2);

    // A change that changes nothing keeps the revision; `*` asks only that the product exists.
    const same = await call({ method: 'PATCH', url, headers: { 'if-match': '"2"' }, payload: { name: 'Calls' } });
    expect([same.statusCode, same.json().revision]).toEqual([200, 2]);
    expect((await call({ method: 'PATCH', url, headers: { 'if-match': '*' }, payload: { name: 'Any' } })).json().revision).toBe(3);
    // The ETag is quoted, as HTTP has it: a bare number is a mistake, said so.
    expectError(await call({ method: 'PATCH', url, headers: { 'if-match': '3' }, payload: { name: 'Bare' } }), 400, 'validation_failed');
    expectError(await call({ method: 'PATCH', url: '/v1/credit-products/nope', headers: { 'if-match': '"1"' }, payload: { name: 'x' } }), 404, 'product_not_found');
  });

  it('answers every stored revision: an older shape as today reads it, one that fails validation marked with why and as stored', async () => {
    const id = `history_${randomUUID()}`;
    await createProduct({ id, bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] });
    // Versions as older releases or hand edits stored them (the column is any JSON): before bundles
    // said whether they are purchase options, without a description or warning limit, a price of
    // usage below zero, a bundle without its price, and not a product at all.
    const older = [
      { id, name: 'Before purchase options', description: 'old', consumption: [{ event: 'api_call', credits: '1.50' }], lowBalanceThreshold: '10', bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] },
      { id, name: 'Sparse', consumption: [{ event: 'api_call', credits: '1', where: {} }], bundles: [] },
      { id, name: 'Negative', description: '', consumption: [{ event: 'api_call', credits: '-1' }], lowBalanceThreshold: null, bundles: [] },
      { id, name: 'Unpriced', description: '', consumption: [], lowBalanceThreshold: null, bundles: [{ id: 'starter', credits: 100 }] },
      null,
    ];
    for (const [index, product] of older.entries()) {
      await db.pool.query('INSERT INTO credit_product_revisions (product_id, revision, product) VALUES ($1, $2, $3)', [id, index + 2, JSON.stringify(product)]);
    }

    const response = await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?limit=3` });
    expect(response.statusCode).toBe(200);
    const rest = await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions?before=${response.json().next}` });
    expect(rest.statusCode).toBe(200);
    const items = [...response.json().items, ...rest.json().items];
    expect(items.map((item: { revision: number; invalid: boolean }) => [item.revision, item.invalid])).toEqual([
      [6, true],
      [5, true],
      [4, true],
      [3, false],
      [2, false],
      [1, false],
    ]);
    const [notAProduct, unpriced, negative, sparse, beforePurchaseOptions] = items;
    // Exactly as today reads them: every bundle of then was a purchase option; no description is
    // empty, no warning limit is none; amounts in their one written form.
    expect(beforePurchaseOptions.product).toEqual({
      ...older[0],
      consumption: [{ event: 'api_call', credits: '1.5' }],
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' }, purchaseOption: true }],
      revision: 2,
    });
    expect(sparse.product).toEqual({ id, name: 'Sparse', description: '', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null, bundles: [], revision: 3 });
    // What no reading can make a product of is shown as stored, with why, and no product.
    expect(negative).toEqual({ revision: 4, changedAt: expect.any(String), changedBy: null, invalid: true, message: expect.stringMatching(/consumption\[0\]\.credits/), stored: older[2] });
    expect(unpriced).toMatchObject({ invalid: true, message: expect.stringMatching(/bundles\[0\]/), stored: older[3] });
    expect(unpriced.product).toBeUndefined();
    expect(notAProduct).toMatchObject({ revision: 6, invalid: true, message: expect.any(String), stored: null });
  });

  it('lists every stored product page by page, naming those that fail validation, which a PATCH repairs', async () => {
    const prefix = `listed_${randomUUID()}`;
    const ids = ['a1', 'a2', 'a3', 'a4', 'a5'].map((suffix) => `${prefix}-${suffix}`);
    for (const id of ids) await createProduct({ id, bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] });
    // Hand edits, as an older version or an operator's SQL could have left them: a bundle without
    // its price (the wrong shape), and a negative price of usage (a value today's rules refuse).
    await db.pool.query(`UPDATE credit_products SET bundles = '[{"id":"starter","credits":"100"}]' WHERE id = $1`, [ids[1]]);
    await db.pool.query(`UPDATE credit_products SET consumption = '[{"event":"api_call","credits":"-1"}]' WHERE id = $1`, [ids[3]]);

    const page = async (after: string) => (await call({ method: 'GET', url: `/v1/credit-products?limit=2&after=${after}` })).json();
    const idsOf = (items: Array<{ id: string }>) => items.map((item) => item.id);
    const first = await page(`${prefix}-a0`);
    expect([idsOf(first.items), idsOf(first.invalid), first.next]).toEqual([[ids[0]], [ids[1]], ids[1]]);
    expect(first.invalid[0]).toEqual({ id: ids[1], revision: 1, message: expect.stringMatching(/bundles\[0\]\.price/), stored: expect.objectContaining({ bundles: [{ id: 'starter', credits: '100' }] }) });
    const second = await page(first.next);
    expect([idsOf(second.items), idsOf(second.invalid), second.next]).toEqual([[ids[2]], [ids[3]], ids[3]]);
    expect(second.invalid[0].message).toMatch(/consumption\[0\]\.credits/);
    const third = await page(second.next);
    expect([idsOf(third.items), third.invalid, third.next]).toEqual([[ids[4]], [], null]);

    // Read alone, it says what is wrong with it; neither a 400 (the request is fine) nor a 500.
    const broken = await call({ method: 'GET', url: `/v1/credit-products/${ids[1]}` });
    expectError(broken, 409, 'stored_product_invalid');
    expect(broken.json().message).toMatch(/bundles\[0\]\.price/);

    // A change of other fields alone leaves it invalid, and says why.
    expectError(await call({ method: 'PATCH', url: `/v1/credit-products/${ids[1]}`, payload: { name: 'Renamed' } }), 400, 'validation_failed');
    // A change of the broken field repairs it, merged into the rest as stored.
    const repaired = await call({ method: 'PATCH', url: `/v1/credit-products/${ids[1]}`, headers: { 'if-match': '"1"' }, payload: { bundles: [] } });
    expect(repaired.statusCode).toBe(200);
    expect(repaired.json()).toMatchObject({ id: ids[1], name: 'API credits', bundles: [], revision: 2 });
    expect((await call({ method: 'GET', url: `/v1/credit-products/${ids[1]}` })).statusCode).toBe(200);
    const again = await page(`${prefix}-a0`);
    expect([idsOf(again.items), again.invalid]).toEqual([[ids[0], ids[1]], []]);
  });

  describe('refuses what a product must not be written with, naming it', () => {
    const post = (payload: string | Record<string, unknown>) =>
      call({ method: 'POST', url: '/v1/credit-products', headers: { 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

    it('a filter on a property with no name, as the console does', async () => {
      const response = await post({ name: 'Nameless filter', consumption: [{ event: 'api_call', credits: '1', where: { '': 'x' } }] });
      expectError(response, 400, 'validation_failed');
      // Refused by the route's schema, before the domain's own check (consumption[0].where) is reached.
      expect(response.json().message).toMatch(/^body\.consumption\.0\.where has a property with no name/);
      const changed = await createProduct({ id: `nameless_${randomUUID()}` });
      const patched = await call({ method: 'PATCH', url: `/v1/credit-products/${changed.id as string}`, payload: { consumption: [{ event: 'e', credits: '1' }, { event: 'e', credits: '1', where: { '': 'x' } }] } });
      expectError(patched, 400, 'validation_failed');
      expect(patched.json().message).toMatch(/^body\.consumption\.1\.where has a property with no name/);
    });

    it('a rule identical to another (filters in any order), which would charge each event twice; overlapping ones are taken', async () => {
      const rule = { event: 'api_call', credits: '1', where: { model: 'large', region: 'eu' } };
      const response = await post({ name: 'Twice', consumption: [rule, { event: 'api_call', credits: '1.0', where: { region: 'eu', model: 'large' } }] });
      expectError(response, 400, 'validation_failed');
      expect(response.json().message).toMatch(/^consumption\[1\] is the same rule as consumption\[0\]/);
      const overlapping = await post({ name: 'Overlapping', consumption: [rule, { event: 'api_call', credits: '1', where: { model: 'large' } }] });
      expect(overlapping.statusCode).toBe(201);
      const patched = await call({ method: 'PATCH', url: `/v1/credit-products/${overlapping.json().id as string}`, payload: { consumption: [rule, rule] } });
      expectError(patched, 400, 'validation_failed');
      expect(patched.json().message).toMatch(/^consumption\[1\] is the same rule as consumption\[0\]/);
    });

    it('a currency ISO 4217 does not have', async () => {
      const response = await post({ name: 'Zed', bundles: [{ id: 'starter', credits: '100', price: { amount: '1', currency: 'ZZZ' } }] });
      expectError(response, 400, 'validation_failed');
      expect(response.json().message).toBe('bundles[0].price.currency "ZZZ" is not an ISO 4217 currency code, such as "EUR"');
    });

    it('a property named __proto__ or a constructor.prototype, which the body parser refuses: said so, not "not valid JSON"', async () => {
      const proto = await post('{"name":"Proto","consumption":[{"event":"api_call","credits":"1","where":{"__proto__":"x"}}]}');
      expectError(proto, 400, 'validation_failed');
      expect(proto.json().message).toBe('body.consumption.0.where has a property named "__proto__", which the API does not accept: rename it');
      const constructor = await post('{"name":"Ctor","description":"","constructor":{"prototype":{"admin":true}}}');
      expectError(constructor, 400, 'validation_failed');
      expect(constructor.json().message).toBe('body has a property "constructor" holding a "prototype", which the API does not accept: rename it');
      // What is not JSON is still said to be so.
      expectError(await post('{"name":"Broken","where":{"__proto__":'), 400, 'invalid_json');
    });

    it('but a product stored with them (before these refusals) still loads, prices with every rule, and takes a change of other fields', async () => {
      const id = `stored_twice_${randomUUID()}`;
      await createProduct({ id, consumption: [{ event: 'api_call', credits: '1' }], bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] });
      const consumption = [{ event: 'api_call', credits: '1' }, { event: 'api_call', credits: '1' }, { event: 'api_call', credits: '1', where: { '': 'x' } }];
      const bundles = [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'ZZZ' }, purchaseOption: true }];
      await db.pool.query('UPDATE credit_products SET consumption = $2::jsonb, bundles = $3::jsonb WHERE id = $1', [id, JSON.stringify(consumption), JSON.stringify(bundles)]);

      const read = await call({ method: 'GET', url: `/v1/credit-products/${id}` });
      expect([read.statusCode, read.json().consumption, read.json().bundles]).toEqual([200, consumption, bundles]);
      // As the consumer reads it to price usage: both identical rules, each charged, as before.
      const loaded = await createPostgresCatalogStore({ pool: db.pool, logger }).getProduct(id);
      expect(loaded?.consumption.map((rule) => rule.credits)).toEqual([1_000_000n, 1_000_000n, 1_000_000n]);
      expect((await call({ method: 'GET', url: `/v1/credit-products?after=${id.slice(0, -1)}&limit=1` })).json()).toMatchObject({ items: [{ id }], invalid: [] });
      const renamed = await call({ method: 'PATCH', url: `/v1/credit-products/${id}`, payload: { name: 'Renamed' } });
      expect([renamed.statusCode, renamed.json().name, renamed.json().consumption]).toEqual([200, 'Renamed', consumption]);
    });
  });

  it('answers a product a hand edit left failing validation with the document as stored, to operators only', async () => {
    const id = `hand_edited_${randomUUID()}`;
    await createProduct({ id, consumption: [{ event: 'api_call', credits: '1' }], bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] });
    // In credit_products alone, as SQL by hand would: no revision written, so the history does not hold it.
    const bundles = [{ id: 'starter', credits: 100, price: { amount: '9.90', currency: 'eur' }, note: 'by hand' }];
    await db.pool.query(`UPDATE credit_products SET name = 'Edited by hand', bundles = $2::jsonb WHERE id = $1`, [id, JSON.stringify(bundles)]);

    const read = await call({ method: 'GET', url: `/v1/credit-products/${id}` });
    expectError(read, 409, 'stored_product_invalid');
    expect(read.json()).toEqual({
      error: 'stored_product_invalid',
      message: expect.stringMatching(/bundles\[0\]/),
      revision: 1,
      reason: expect.stringMatching(/^bundles\[0\]/),
      stored: { id, name: 'Edited by hand', description: '', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null, bundles },
    });
    // The list names it the same way, with the same document.
    const listed = (await call({ method: 'GET', url: `/v1/credit-products?after=${id.slice(0, -1)}&limit=1` })).json();
    expect(listed.invalid).toEqual([{ id, revision: 1, message: read.json().reason, stored: read.json().stored }]);
    // Its history still ends at the version the API wrote: only the GET has the hand edit.
    expect((await call({ method: 'GET', url: `/v1/credit-products/${id}/revisions` })).json().items.map((item: { revision: number }) => item.revision)).toEqual([1]);

    // A portal token reads neither the product nor what is stored of it: the catalog is the operators'.
    const customerId = `customer-${randomUUID()}`;
    const link = await call({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions` });
    expect(link.statusCode).toBe(201);
    const portal = { authorization: `Bearer ${link.json().token as string}` };
    for (const url of [`/v1/credit-products/${id}`, `/v1/credit-products?after=${id.slice(0, -1)}`, `/v1/credit-products/${id}/revisions`]) {
      const refused = await app.inject({ method: 'GET', url, headers: portal });
      expectError(refused, 403, 'insufficient_scope');
      expect(refused.json().stored).toBeUndefined();
    }
  });
});
