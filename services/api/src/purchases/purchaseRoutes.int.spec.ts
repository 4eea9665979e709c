import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createAutoRecharges, createLedgerService, createPostgresBalanceRegistry, createPurchaseService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';
import { requestHash } from '../requestHash';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 'purchase-routes-admin-key-0123456';

/** POST /v1/credit-balances/{balanceId}/purchases against PostgreSQL, by a key and by a portal token. */
describe('purchases over HTTP', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let app: FastifyInstance;
  const keyPrefix = uniqueName('purchase_routes');

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'purchase_routes' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    const purchases = createPurchaseService({ catalog, balanceRegistry, ledger });
    redis = new Redis(stackConfig.redisUrl);
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [{ key: ADMIN, scopes: ['admin'], name: 'ops' }],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases,
      autoRecharges: createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore }),
      web: { secret: 'purchase-routes-session-secret-0123456789' },
    });
  });

  afterAll(async () => {
    await app?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      redis.disconnect();
    }
    await eventStore?.close();
    await db?.drop();
  });

  const admin = { authorization: `Bearer ${ADMIN}` };
  const call = (options: InjectOptions) => app.inject({ ...options, headers: { ...admin, ...options.headers } });

  /** A customer's balance of a product of its own selling `small` (100 credits for 9.90 EUR), and a portal token of the customer. */
  async function customerWithBalance() {
    const productId = uniqueName('bundled');
    const bundles = [{ id: 'small', credits: '100', price: { amount: '9.90', currency: 'EUR' } }];
    expect((await call({ method: 'POST', url: '/v1/credit-products', payload: { id: productId, name: 'Bundled', bundles } })).statusCode).toBe(201);
    const customerId = `customer-${randomUUID()}`;
    const opened = await call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId } });
    expect(opened.statusCode).toBe(201);
    const link = await call({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions` });
    return { productId, bundles, customerId, balanceId: opened.json().id as string, portal: { authorization: `Bearer ${link.json().token as string}` } };
  }

  const ledgerOf = async (balanceId: string) =>
    ((await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger` })).json().items as Array<{ type: string }>).map(({ type }) => type);

  it("answers a retried portal purchase with its first result after the bundle left the purchase options or the product", async () => {
    const { productId, bundles, balanceId, portal } = await customerWithBalance();
    const buy = (payload: object) =>
      app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...portal, 'idempotency-key': 'portal-k1' }, payload });
    const first = await buy({ bundleId: 'small' });
    expect(first.statusCode).toBe(201);

    // The operator unticks the bundle's purchase option between the click and the retry, then removes it.
    const patch = (payload: object) => call({ method: 'PATCH', url: `/v1/credit-products/${productId}`, payload });
    expect((await patch({ bundles: bundles.map((bundle) => ({ ...bundle, purchaseOption: false })) })).statusCode).toBe(200);
    const retried = await buy({ bundleId: 'small' });
    expect([retried.statusCode, retried.headers['idempotent-replayed']]).toEqual([201, 'true']);
    expect(retried.json().entry).toEqual(first.json().entry);
    expect((await patch({ bundles: [] })).statusCode).toBe(200);
    const again = await buy({ bundleId: 'small' });
    expect([again.statusCode, again.headers['idempotent-replayed'], again.json().balance.balance]).toEqual([201, 'true', '100']);
    // Another request with the key is still refused as that, and a new key buys only what is offered.
    expect((await buy({ bundleId: 'small', quantity: 2 })).json().error).toBe('idempotency_key_reused');
    const fresh = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...portal, 'idempotency-key': 'portal-k2' }, payload: { bundleId: 'small' } });
    expect([fresh.statusCode, fresh.json().error]).toEqual([404, 'bundle_not_found']);
    expect(await ledgerOf(balanceId)).toEqual(['CreditToppedUp', 'CreditBalanceOpened']);
  });

  it('refuses a purchase whose bundle changed since the buyer read it, recording nothing; a retry of a stored one still answers it', async () => {
    const { productId, customerId, balanceId, portal } = await customerWithBalance();
    const offered = async () => {
      const read = await app.inject({ method: 'GET', url: `/v1/customers/${customerId}/purchase-options`, headers: portal });
      const { credits, price } = read.json().items[0].bundles[0] as { credits: string; price: { amount: string; currency: string } };
      return { credits, price };
    };
    const buy = (key: string, payload: object) =>
      app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...portal, 'idempotency-key': key }, payload });
    const reprice = (credits: string, amount: string) =>
      call({ method: 'PATCH', url: `/v1/credit-products/${productId}`, payload: { bundles: [{ id: 'small', credits, price: { amount, currency: 'EUR' } }] } });

    const shown = await offered();
    expect(shown).toEqual({ credits: '100', price: { amount: '9.90', currency: 'EUR' } });
    const first = await buy('k1', { bundleId: 'small', expected: shown });
    expect([first.statusCode, first.json().balance.balance]).toEqual([201, '100']);

    // The operator changes the price, then the credits, while the customer still sees the old terms.
    expect((await reprice('100', '19.90')).statusCode).toBe(200);
    const repriced = await buy('k2', { bundleId: 'small', expected: shown });
    expect([repriced.statusCode, repriced.json().error]).toEqual([409, 'purchase_terms_changed']);
    expect(repriced.json().message).toMatch(/now 100 credits for 19\.90 EUR.*100 credits for 9\.90 EUR/);
    expect((await reprice('50', '9.90')).statusCode).toBe(200);
    const shrunk = await buy('k2', { bundleId: 'small', quantity: 2, expected: shown });
    expect([shrunk.statusCode, shrunk.json().error]).toEqual([409, 'purchase_terms_changed']);
    expect(shrunk.json().message).toMatch(/now 50 credits for 9\.90 EUR/);
    expect(await ledgerOf(balanceId)).toEqual(['CreditToppedUp', 'CreditBalanceOpened']);

    // The purchase made at the old terms answers as it was made.
    const retried = await buy('k1', { bundleId: 'small', expected: shown });
    expect([retried.statusCode, retried.headers['idempotent-replayed']]).toEqual([201, 'true']);
    expect(retried.json().entry).toEqual(first.json().entry);

    // Confirmed at the terms read again, spelled differently: bought, under the key the refusals left unused.
    const current = await offered();
    expect(current).toEqual({ credits: '50', price: { amount: '9.90', currency: 'EUR' } });
    const confirmed = await buy('k2', { bundleId: 'small', expected: { credits: '50.0', price: { amount: '9.9', currency: 'EUR' } } });
    expect([confirmed.statusCode, confirmed.json().entry.credits, confirmed.json().balance.balance]).toEqual([201, '50', '150']);
    expect((await buy('k2', { bundleId: 'small', expected: current })).headers['idempotent-replayed']).toBe('true');
    expect((await buy('k2', { bundleId: 'small', expected: shown })).json().error).toBe('idempotency_key_reused');
    expect((await buy('k2', { bundleId: 'small' })).json().error).toBe('idempotency_key_reused');

    // Without an expectation a purchase is priced at the click, its digest as it always was: a
    // purchase stored before expectations existed still replays.
    const plain = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { 'idempotency-key': 'k3' }, payload: { bundleId: 'small' } });
    expect(plain.statusCode).toBe(201);
    const [stored] = await eventStore.readEventsById([plain.json().entry.id as string]);
    expect(stored?.metadata.requestHash).toBe(requestHash({ bundleId: 'small', quantity: 1 }));

    const refusals: Array<[object, string]> = [
      [{ bundleId: 'small', expected: { credits: '50' } }, 'validation_failed'],
      [{ bundleId: 'small', expected: { credits: '50', price: { amount: '9.90', currency: 'eur' } } }, 'validation_failed'],
      [{ bundleId: 'small', expected: { credits: '50', price: { amount: '-1', currency: 'EUR' } } }, 'validation_failed'],
      [{ bundleId: 'small', expected: { ...current, total: '9.90' } }, 'validation_failed'],
      [{ bundleId: 'small', expected: { credits: '50', price: { amount: '9.90', currency: 'USD' } } }, 'purchase_terms_changed'],
    ];
    for (const [payload, error] of refusals) expect({ payload, error: (await buy(`k-${randomUUID()}`, payload)).json().error }).toEqual({ payload, error });
    expect(await ledgerOf(balanceId)).toEqual(['CreditToppedUp', 'CreditToppedUp', 'CreditToppedUp', 'CreditBalanceOpened']);
  });

  it('answers a malformed purchase 4xx with a message saying what is wrong, recording nothing', async () => {
    const { balanceId, customerId } = await customerWithBalance();
    const shown = { credits: '100', price: { amount: '9.90', currency: 'EUR' } };
    const withPrice = (price: unknown) => ({ bundleId: 'small', expected: { credits: '100', price } });
    const PRICE_FORMAT = /body\.expected\.price\.amount must be a decimal string with at most 12 integer and 6 fractional digits/;
    // [what, body (a string is sent as it is), status, error, message]
    const cases: Array<[string, unknown, number, string, RegExp]> = [
      ['a negative price', withPrice({ amount: '-9.90', currency: 'EUR' }), 400, 'validation_failed', PRICE_FORMAT],
      ['a price in exponent notation', withPrice({ amount: '1e3', currency: 'EUR' }), 400, 'validation_failed', PRICE_FORMAT],
      ['a price with 13 integer digits', withPrice({ amount: '1234567890123', currency: 'EUR' }), 400, 'validation_failed', PRICE_FORMAT],
      ['a price with 7 decimals', withPrice({ amount: '9.9000001', currency: 'EUR' }), 400, 'validation_failed', PRICE_FORMAT],
      ['an empty price', withPrice({ amount: '', currency: 'EUR' }), 400, 'validation_failed', PRICE_FORMAT],
      ['a price as a number', withPrice({ amount: 9.9, currency: 'EUR' }), 400, 'validation_failed', /body\.expected\.price\.amount must be string/],
      ['a price as text', withPrice('9.90 EUR'), 400, 'validation_failed', /body\.expected\.price must be object/],
      ['a price without its currency', withPrice({ amount: '9.90' }), 400, 'validation_failed', /currency/],
      ['a lower-case currency', withPrice({ amount: '9.90', currency: 'eur' }), 400, 'validation_failed', /body\.expected\.price\.currency must be three capital letters/],
      ['a price with a tax', withPrice({ amount: '9.90', currency: 'EUR', tax: '0' }), 400, 'validation_failed', /unknown property "tax"/],
      ['expected credits as a number', { bundleId: 'small', expected: { ...shown, credits: 100 } }, 400, 'validation_failed', /body\.expected\.credits must be string/],
      ['expected credits past the largest amount', { bundleId: 'small', expected: { ...shown, credits: '9999999999999999' } }, 400, 'invalid_amount', /credits/],
      ['empty expected credits', { bundleId: 'small', expected: { ...shown, credits: '' } }, 400, 'validation_failed', /body\.expected\.credits must be a decimal string/],
      ['a bundle id as a number', { bundleId: 7 }, 400, 'validation_failed', /body\.bundleId must be string/],
      ['an empty bundle id', { bundleId: '' }, 400, 'validation_failed', /body\.bundleId must be 1-128 letters/],
      ['a quantity as text', { bundleId: 'small', quantity: '2' }, 400, 'validation_failed', /body\.quantity must be integer/],
      ['a fractional quantity', { bundleId: 'small', quantity: 1.5 }, 400, 'validation_failed', /body\.quantity must be integer/],
      ['a quantity of 0', { bundleId: 'small', quantity: 0 }, 400, 'validation_failed', /body\.quantity must be >= 1/],
      ['a huge quantity', { bundleId: 'small', quantity: 1e300 }, 400, 'validation_failed', /body\.quantity must be <= 1000000/],
      ['a quantity past what JSON numbers hold exactly', '{"bundleId":"small","quantity":123456789012345678901234567890}', 400, 'validation_failed', /body\.quantity must be <= 1000000/],
      ['an unknown field', { bundleId: 'small', price: '9.90' }, 400, 'validation_failed', /unknown property "price"/],
      ['no body fields', {}, 400, 'validation_failed', /bundleId/],
      ['an array', [], 400, 'validation_failed', /body must be object/],
      ['null', 'null', 400, 'validation_failed', /body must be object/],
      ['a quantity beyond a double', '{"bundleId":"small","quantity":1e400}', 400, 'validation_failed', /body\.quantity must be integer/],
      ['malformed JSON', '{"bundleId":', 400, 'invalid_json', /not valid JSON/],
      ['a __proto__ field', '{"bundleId":"small","__proto__":{"quantity":2}}', 400, 'validation_failed', /body has a property named "__proto__"/],
    ];
    const answers = [];
    for (const [what, body] of cases) {
      const response = await call({
        method: 'POST',
        url: `/v1/credit-balances/${balanceId}/purchases`,
        headers: { 'idempotency-key': `bad-${randomUUID()}`, 'content-type': 'application/json' },
        payload: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const answer = response.json<{ error?: string; message?: string }>();
      answers.push({ what, status: response.statusCode, error: answer.error, message: answer.message });
    }
    expect(answers).toEqual(cases.map(([what, , status, error, message]) => ({ what, status, error, message: expect.stringMatching(message) })));
    const badKey = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { 'idempotency-key': 'with spaces' }, payload: { bundleId: 'small' } });
    expect([badKey.statusCode, badKey.json().message]).toEqual([400, expect.stringMatching(/headers\.idempotency-key must be 1-255 printable ASCII characters/)]);
    // The purchase options read back unchanged, and nothing was bought.
    expect((await call({ method: 'GET', url: `/v1/customers/${customerId}/purchase-options` })).json().items[0].bundles[0]).toEqual({ id: 'small', ...shown });
    expect(await ledgerOf(balanceId)).toEqual(['CreditBalanceOpened']);
  });

  it('answers 409 stored_product_invalid, not 400, to a purchase or an opening of a product stored invalid: the client cannot fix it', async () => {
    const { productId, customerId, balanceId, portal } = await customerWithBalance();
    // A hand edit (or an older release) left the bundle without its price.
    await db.pool.query(`UPDATE credit_products SET bundles = '[{"id":"small","credits":"100"}]' WHERE id = $1`, [productId]);

    const refused = [
      await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { 'idempotency-key': 'broken-k1' }, payload: { bundleId: 'small' } }),
      await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...portal, 'idempotency-key': 'broken-k2' }, payload: { bundleId: 'small' } }),
      await call({ method: 'POST', url: `/v1/customers/${customerId}-other/credit-balances`, payload: { productId } }),
    ];
    for (const response of refused) {
      expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode: 409, error: 'stored_product_invalid' });
      expect(response.json().message).toMatch(new RegExp(`${productId}.*bundles\\[0\\]\\.price`));
    }
    expect(await ledgerOf(balanceId)).toEqual(['CreditBalanceOpened']);
  });
});
