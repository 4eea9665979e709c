import { createHash, randomUUID } from 'node:crypto';
import { buildApp, type LedgerEntryView } from '@tally/api';
import { createMetricsRegistry } from '@tally/metrics';
import { createPurchaseService } from '@tally/ledger';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { periodStart } from './billingPeriod';
import { createSubscriptionsHarness, SubscriptionsHarness } from './testing/subscriptionsHarness';
import type { SubscriptionView } from './subscriptionView';

jest.setTimeout(120_000);

const KEY = 'subscriptions-test-key-0123456789';
// A second, unnamed key: each change records whichever key made it.
const OTHER_KEY = 'subscriptions-other-key-0123456789';
// The key's id computed here, apart from the code under test: the first 12 hex digits of its SHA-256.
const keyIdOf = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 12);
const BY_KEY = { keyId: keyIdOf(KEY), keyName: 'plans-admin' };
const BY_OTHER = { keyId: keyIdOf(OTHER_KEY), keyName: null };
const START = '2024-01-31T09:00:00.000Z';
const inPeriod = (n: number) => new Date(periodStart(new Date(START), 'month', n).getTime() + 1000);

interface PurchaseOptionsBody {
  items: Array<{ balanceId: string; productId: string; bundles: Array<{ id: string; credits: string; price: { amount: string; currency: string } }> }>;
}

/** The plan, subscription and purchase routes through buildApp, as a client sees them. */
describe('plans, subscriptions and purchases over HTTP', () => {
  let h: SubscriptionsHarness;
  let app: FastifyInstance;

  beforeAll(async () => {
    h = await createSubscriptionsHarness('subs_api', START);
    app = await buildApp({
      catalog: h.catalog,
      balanceRegistry: h.balanceRegistry,
      ledger: h.ledger,
      subscriptions: h.service,
      purchases: createPurchaseService({ catalog: h.catalog, balanceRegistry: h.balanceRegistry, ledger: h.ledger }),
      // No read model here: balance reads fall back on the event store, which is what these tests check.
      balances: {
        getBalance: async () => undefined,
        getCustomerBalances: async () => [],
        getEntitlement: async () => ({ snapshot: undefined, checkpoint: 0n, freshAsOf: undefined }),
        servedCheckpoint: async () => undefined,
      },
      eventStore: h.eventStore,
      apiKeys: [{ key: KEY, scopes: ['admin'], name: 'plans-admin' }, { key: OTHER_KEY, scopes: ['admin'] }],
      logger: h.logger,
      health: async () => ({ postgres: 'up' }),
      metrics: createMetricsRegistry(),
      web: { secret: `subscriptions-test-secret-${randomUUID()}` },
    });
  });

  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  beforeEach(() => h.clock.set(START));

  function call(options: InjectOptions, key = KEY): Promise<LightMyRequestResponse> {
    return app.inject({ ...options, headers: { authorization: `Bearer ${key}`, ...options.headers } });
  }

  function expectError(response: LightMyRequestResponse, statusCode: number, error: string): void {
    expect({ statusCode: response.statusCode, body: response.json() }).toEqual({
      statusCode,
      body: { error, message: expect.any(String) },
    });
  }

  async function createProduct(bundles: unknown[] = []): Promise<string> {
    const response = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'API calls', bundles } });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  }

  async function ledgerOf(balanceId: string): Promise<LedgerEntryView[]> {
    const response = await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger?limit=500` });
    expect(response.statusCode).toBe(200);
    return response.json<{ items: LedgerEntryView[] }>().items.reverse();
  }

  async function balanceIdOf(customerId: string, productId: string): Promise<string> {
    const response = await call({ method: 'GET', url: `/v1/customers/${customerId}/purchase-options` });
    const option = response.json<PurchaseOptionsBody>().items.find((item) => item.productId === productId);
    if (option === undefined) throw new Error(`customer ${customerId} has no balance of ${productId}`);
    return option.balanceId;
  }

  it('refuses every route without a valid key', async () => {
    for (const [method, url] of [
      ['POST', '/v1/plans'],
      ['GET', '/v1/plans/p1'],
      ['POST', '/v1/plans/p1/retire'],
      ['POST', '/v1/subscriptions'],
      ['GET', '/v1/subscriptions/s1'],
      ['PATCH', '/v1/subscriptions/s1'],
      ['POST', '/v1/subscriptions/s1/cancel'],
      ['POST', '/v1/credit-balances/b1/purchases'],
      ['GET', '/v1/customers/c1/purchase-options'],
      ['GET', '/v1/plans'],
      ['GET', '/v1/customers/c1/subscriptions'],
    ] as const) {
      const response = await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } });
      expectError(response, 401, 'unauthorized');
    }
  });

  describe('plans', () => {
    it('creates a plan and reads it back, each period shape as documented', async () => {
      const productId = await createProduct();
      const other = await createProduct();
      const payload = {
        name: 'Pro',
        items: [
          { productId, creditsPerPeriod: '1000.5', period: 'month', lowBalanceThreshold: '50' },
          { productId: other, creditsPerPeriod: '7', period: { days: 14 } },
        ],
      };
      const created = await call({ method: 'POST', url: '/v1/plans', payload });
      expect(created.statusCode).toBe(201);
      const plan = created.json<{ id: string }>();
      expect(plan).toEqual({
        id: expect.any(String),
        name: 'Pro',
        items: [
          { productId, creditsPerPeriod: '1000.5', period: 'month', lowBalanceThreshold: '50' },
          { productId: other, creditsPerPeriod: '7', period: { days: 14 }, lowBalanceThreshold: null },
        ],
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        createdBy: BY_KEY,
        retiredAt: null,
        retiredBy: null,
      });
      const read = await call({ method: 'GET', url: `/v1/plans/${plan.id}` });
      expect(read.json()).toEqual(plan);
    });

    it('takes a plan name and a customer id of 256 characters counted as the schema counts them (an emoji is one)', async () => {
      const productId = await createProduct();
      const name = '\u{1F600}'.repeat(200);
      const plan = await call({ method: 'POST', url: '/v1/plans', payload: { name, items: [{ productId, creditsPerPeriod: '1', period: 'month' }] } });
      expect({ statusCode: plan.statusCode, name: plan.json<{ name: string }>().name }).toEqual({ statusCode: 201, name });
      const customerId = '\u{1F600}'.repeat(200);
      const subscribed = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: plan.json<{ id: string }>().id } });
      expect({ statusCode: subscribed.statusCode, customerId: subscribed.json<{ customerId: string }>().customerId }).toEqual({ statusCode: 201, customerId });
      const tooLong = await call({ method: 'POST', url: '/v1/plans', payload: { name: '\u{1F600}'.repeat(257), items: [{ productId, creditsPerPeriod: '1', period: 'month' }] } });
      expectError(tooLong, 400, 'validation_failed');
    });

    it('records the key that created each plan, named or not', async () => {
      const productId = await createProduct();
      const prefix = `plan-${randomUUID()}`;
      const payload = { id: `${prefix}-a`, name: 'Basic', items: [{ productId, creditsPerPeriod: '1', period: 'year' }] };
      const byOther = await call({ method: 'POST', url: '/v1/plans', payload }, OTHER_KEY);
      expect(byOther.statusCode).toBe(201);
      expect(byOther.json()).toMatchObject({ createdBy: BY_OTHER });
      // The only plan after `${prefix}-` in id order with that prefix is this one: the list answers it as created.
      const listed = await call({ method: 'GET', url: `/v1/plans?limit=1&after=${prefix}-` });
      expect(listed.json<{ items: unknown[] }>().items).toEqual([byOther.json()]);
    });

    it('retires a plan: new subscriptions are refused, its subscription keeps granting, the first retirement stands', async () => {
      const productId = await createProduct();
      const plan = (await call({ method: 'POST', url: '/v1/plans', payload: { name: 'Old offer', items: [{ productId, creditsPerPeriod: '10', period: 'month' }] } })).json<{
        id: string;
      }>();
      const customerId = `cus_${randomUUID()}`;
      const subscribed = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: plan.id, startsAt: START } });
      expect(subscribed.statusCode).toBe(201);

      const retired = await call({ method: 'POST', url: `/v1/plans/${plan.id}/retire` }, OTHER_KEY);
      expect(retired.statusCode).toBe(200);
      expect(retired.json()).toMatchObject({ id: plan.id, retiredAt: START, retiredBy: BY_OTHER });
      h.clock.set(inPeriod(2));
      const again = await call({ method: 'POST', url: `/v1/plans/${plan.id}/retire` });
      expect(again.json()).toMatchObject({ retiredAt: START, retiredBy: BY_OTHER });
      expect((await call({ method: 'GET', url: `/v1/plans/${plan.id}` })).json()).toEqual(again.json());

      expectError(await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId: `cus_${randomUUID()}`, planId: plan.id } }), 409, 'plan_retired');
      await h.newScheduler().runOnce();
      const grants = (await ledgerOf(await balanceIdOf(customerId, productId))).filter((entry) => entry.source === 'grant');
      expect(grants.map((entry) => entry.grant?.period)).toEqual([0, 1, 2]);
      expectError(await call({ method: 'POST', url: '/v1/plans/nope/retire' }), 404, 'plan_not_found');
    });

    it('answers 400 for invalid plans, 404 for unknown products and plans, 409 for a taken id', async () => {
      const productId = await createProduct();
      const item = { productId, creditsPerPeriod: '10', period: 'year' };
      for (const payload of [
        { name: 'x', items: [] },
        { name: 'x', items: [{ ...item, period: 'week' }] },
        { name: 'x', items: [{ ...item, period: { days: 0 } }] },
        { name: 'x', items: [{ ...item, creditsPerPeriod: '0' }] },
        { name: 'x', items: [{ ...item, creditsPerPeriod: 10 }] },
        { name: 'x', items: [item, item] },
        { name: 'x', items: [item], extra: true },
      ]) {
        const response = await call({ method: 'POST', url: '/v1/plans', payload });
        expect({ payload, statusCode: response.statusCode }).toEqual({ payload, statusCode: 400 });
      }
      // One sentence naming the field at fault, not one per form the period could have taken.
      const zeroDays = await call({ method: 'POST', url: '/v1/plans', payload: { name: 'x', items: [{ ...item, period: { days: 0 } }] } });
      expect(zeroDays.json()).toEqual({ error: 'validation_failed', message: 'body.items.0.period.days must be >= 1' });
      expectError(
        await call({ method: 'POST', url: '/v1/plans', payload: { name: 'x', items: [{ ...item, productId: 'nope' }] } }),
        404,
        'product_not_found',
      );
      expectError(await call({ method: 'GET', url: '/v1/plans/nope' }), 404, 'plan_not_found');
      const id = `plan-${randomUUID()}`;
      expect((await call({ method: 'POST', url: '/v1/plans', payload: { id, name: 'x', items: [item] } })).statusCode).toBe(201);
      expectError(await call({ method: 'POST', url: '/v1/plans', payload: { id, name: 'x', items: [item] } }), 409, 'plan_already_exists');
    });
  });

  describe('subscriptions', () => {
    async function subscribe(creditsPerPeriod: string, overrides: unknown[] = []) {
      const productId = await createProduct();
      const plan = await call({ method: 'POST', url: '/v1/plans', payload: { name: 'Monthly', items: [{ productId, creditsPerPeriod, period: 'month' }] } });
      const customerId = `cus_${randomUUID()}`;
      const response = await call({
        method: 'POST',
        url: '/v1/subscriptions',
        payload: { customerId, planId: plan.json<{ id: string }>().id, startsAt: START, overrides: overrides.map((o) => ({ productId, ...(o as object) })) },
      });
      expect({ statusCode: response.statusCode, etag: response.headers.etag }).toEqual({ statusCode: 201, etag: '"1"' });
      return { productId, customerId, subscription: response.json<SubscriptionView>() };
    }

    it('answers a subscription backdated five years with a daily period at once, having granted only its inline bound', async () => {
      h.clock.set(new Date(new Date(START).getTime() + 5 * 366 * 86_400_000));
      const productId = await createProduct();
      const plan = await call({ method: 'POST', url: '/v1/plans', payload: { name: 'Daily', items: [{ productId, creditsPerPeriod: '1', period: { days: 1 } }] } });
      const customerId = `cus_${randomUUID()}`;
      const response = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: plan.json<{ id: string }>().id, startsAt: START } });
      expect(response.statusCode).toBe(201);
      const [item] = response.json<SubscriptionView>().items;
      expect(item!.currentPeriod?.index).toBe(5 * 366);
      // 12 grants (the service's default inline bound) of 1,831 due: the scheduler grants the rest.
      expect(item!.grantedThrough).toBe(11);
      const grants = (await ledgerOf(await balanceIdOf(customerId, productId))).filter((entry) => entry.source === 'grant');
      expect(grants).toHaveLength(12);
    });

    it('grants the first period at once, with the override, and shows the grant in the ledger API', async () => {
      const { productId, customerId, subscription } = await subscribe('100', [{ creditsPerPeriod: '250' }]);
      expect(subscription).toMatchObject({
        customerId,
        startsAt: START,
        status: 'active',
        canceledAt: null,
        items: [
          {
            productId,
            period: 'month',
            currentPeriod: { index: 0, start: START, end: '2024-02-29T09:00:00.000Z' },
            creditsPerPeriod: '250',
            grantedThrough: 0,
            finalPeriod: null,
          },
        ],
      });
      const grants = (await ledgerOf(await balanceIdOf(customerId, productId))).filter((entry) => entry.source === 'grant');
      expect(grants).toEqual([
        expect.objectContaining({
          type: 'CreditToppedUp',
          credits: '250',
          balanceAfter: '250',
          grant: { subscriptionId: subscription.id, planId: subscription.planId, period: 0, periodStart: START, periodEnd: '2024-02-29T09:00:00.000Z' },
        }),
      ]);
      const read = await call({ method: 'GET', url: `/v1/subscriptions/${subscription.id}` });
      expect(read.json()).toEqual(subscription);
    });

    it("lists a customer's subscriptions and the plans a page at a time", async () => {
      const { customerId, subscription, productId } = await subscribe('5');
      const planIds = [subscription.planId];
      const second = await call({
        method: 'POST',
        url: '/v1/subscriptions',
        payload: { customerId, planId: subscription.planId, startsAt: START, id: `${subscription.id}-second` },
      });
      expect(second.statusCode).toBe(201);
      const first = await call({ method: 'GET', url: `/v1/customers/${customerId}/subscriptions?limit=1` });
      expect(first.json()).toEqual({ items: [subscription], next: subscription.id });
      const rest = await call({ method: 'GET', url: `/v1/customers/${customerId}/subscriptions?limit=1&after=${subscription.id}` });
      expect(rest.json()).toEqual({ items: [second.json()], next: null });
      expect((await call({ method: 'GET', url: `/v1/customers/cus_${randomUUID()}/subscriptions` })).json()).toEqual({ items: [], next: null });

      for (let n = 0; n < 2; n += 1) {
        const plan = await call({ method: 'POST', url: '/v1/plans', payload: { name: `Page ${n}`, items: [{ productId, creditsPerPeriod: '1', period: 'year' }] } });
        planIds.push(plan.json<{ id: string }>().id);
      }
      const seen: string[] = [];
      let after: string | null = null;
      do {
        const page: { items: Array<{ id: string }>; next: string | null } = (
          await call({ method: 'GET', url: `/v1/plans?limit=2${after === null ? '' : `&after=${after}`}` })
        ).json();
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((plan) => plan.id));
        after = page.next;
      } while (after !== null);
      expect(seen).toEqual([...seen].sort());
      expect(seen).toEqual(expect.arrayContaining(planIds));
    });

    it('PATCH changes the terms from the next period; cancel stops grants after the current one', async () => {
      const { productId, customerId, subscription } = await subscribe('100');
      const scheduler = h.newScheduler();

      const patched = await call({
        method: 'PATCH',
        url: `/v1/subscriptions/${subscription.id}`,
        payload: { overrides: [{ productId, creditsPerPeriod: '300' }] },
      });
      expect(patched.statusCode).toBe(200);
      expect(patched.json<SubscriptionView>().overrides).toEqual([
        { productId, effectiveFromPeriod: 1, creditsPerPeriod: '300', lowBalanceThreshold: null, changedBy: BY_KEY },
      ]);
      expect(patched.json<SubscriptionView>().items[0]?.creditsPerPeriod).toBe('100');
      // The next period's grant shows the change: what the portal shows beside "Next credits".
      const read = await call({ method: 'GET', url: `/v1/subscriptions/${subscription.id}` });
      expect(read.json<SubscriptionView>().items[0]).toMatchObject({
        creditsPerPeriod: '100',
        next: { index: 1, start: '2024-02-29T09:00:00.000Z', creditsPerPeriod: '300', lowBalanceThreshold: null },
      });

      h.clock.set(inPeriod(1));
      await scheduler.runOnce();
      const canceled = await call({ method: 'POST', url: `/v1/subscriptions/${subscription.id}/cancel` }, OTHER_KEY);
      expect(canceled.json<SubscriptionView>()).toMatchObject({
        status: 'canceled',
        canceledAt: inPeriod(1).toISOString(),
        createdBy: BY_KEY,
        canceledBy: BY_OTHER,
        items: [{ finalPeriod: 1 }],
      });
      h.clock.set(inPeriod(4));
      await scheduler.runOnce();

      const grants = (await ledgerOf(await balanceIdOf(customerId, productId))).filter((entry) => entry.source === 'grant');
      expect(grants.map((entry) => [entry.grant?.period, entry.credits])).toEqual([
        [0, '100'],
        [1, '300'],
      ]);
      // The first cancellation stands, and so does the key that made it.
      h.clock.set(inPeriod(5));
      const again = await call({ method: 'POST', url: `/v1/subscriptions/${subscription.id}/cancel` });
      expect(again.json<SubscriptionView>()).toMatchObject({ canceledAt: inPeriod(1).toISOString(), canceledBy: BY_OTHER });
      expectError(
        await call({ method: 'PATCH', url: `/v1/subscriptions/${subscription.id}`, payload: { overrides: [] } }),
        409,
        'subscription_canceled',
      );
    });

    it("answers its version as the ETag and takes it back as If-Match: a change over another's is 412 subscription_changed", async () => {
      const { productId, subscription } = await subscribe('100');
      expect(subscription.version).toBe(1);
      const url = `/v1/subscriptions/${subscription.id}`;
      const read = await call({ method: 'GET', url });
      expect({ etag: read.headers.etag, version: read.json<SubscriptionView>().version }).toEqual({ etag: '"1"', version: 1 });

      const patched = await call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: { overrides: [{ productId, creditsPerPeriod: '300' }] } });
      expect({ statusCode: patched.statusCode, etag: patched.headers.etag, version: patched.json<SubscriptionView>().version }).toEqual({ statusCode: 200, etag: '"2"', version: 2 });
      const stale = await call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: { overrides: [{ productId, lowBalanceThreshold: '5' }] } });
      expectError(stale, 412, 'subscription_changed');
      expect(stale.json<{ message: string }>().message).toMatch(/is at version 2, not 1/);
      const weak = await call({ method: 'PATCH', url, headers: { 'if-match': 'W/"2"' }, payload: { overrides: [] } });
      expectError(weak, 400, 'validation_failed');
      // Said in words, as for a balance's or a product's If-Match.
      expect(weak.json<{ message: string }>().message).toBe('headers.if-match must be an ETag as read (the version, quoted: "3"), or *');
      // Nothing of the refused change was made.
      expect((await call({ method: 'GET', url })).json<SubscriptionView>().overrides.map((o) => [o.effectiveFromPeriod, o.creditsPerPeriod, o.lowBalanceThreshold])).toEqual([
        [1, '300', null],
      ]);

      expectError(await call({ method: 'POST', url: `${url}/cancel`, headers: { 'if-match': '"1"' } }), 412, 'subscription_changed');
      const canceled = await call({ method: 'POST', url: `${url}/cancel`, headers: { 'if-match': '"2"' } });
      expect({ statusCode: canceled.statusCode, etag: canceled.headers.etag, status: canceled.json<SubscriptionView>().status }).toEqual({
        statusCode: 200,
        etag: '"3"',
        status: 'canceled',
      });
      const again = await call({ method: 'POST', url: `${url}/cancel`, headers: { 'if-match': '*' } });
      expect({ statusCode: again.statusCode, etag: again.headers.etag }).toEqual({ statusCode: 200, etag: '"3"' });
    });

    it('of two concurrent PATCHes against one version, one is made and the other is 412; without If-Match both are, one after the other', async () => {
      const { productId, subscription } = await subscribe('100');
      const url = `/v1/subscriptions/${subscription.id}`;
      const credits = { overrides: [{ productId, creditsPerPeriod: '300' }] };
      const threshold = { overrides: [{ productId, lowBalanceThreshold: '5' }] };
      const guarded = await Promise.all([
        call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: credits }),
        call({ method: 'PATCH', url, headers: { 'if-match': '"1"' }, payload: threshold }),
      ]);
      expect(guarded.map((response) => response.statusCode).sort()).toEqual([200, 412]);

      const [a, b] = await Promise.all([call({ method: 'PATCH', url, payload: credits }), call({ method: 'PATCH', url, payload: threshold })]);
      const nextTerms = (response: LightMyRequestResponse) => response.json<SubscriptionView>().items[0]?.next;
      expect({ a: nextTerms(a), b: nextTerms(b) }).toMatchObject({ a: { creditsPerPeriod: '300', lowBalanceThreshold: null }, b: { creditsPerPeriod: '100', lowBalanceThreshold: '5' } });
      expect([a.headers.etag, b.headers.etag].sort()).toEqual(['"3"', '"4"']);
    });

    it('records who created it, who changed each override version, and names the creator on the balance it opened', async () => {
      const { productId, customerId, subscription } = await subscribe('100', [{ creditsPerPeriod: '250' }]);
      expect(subscription).toMatchObject({
        createdBy: BY_KEY,
        canceledBy: null,
        overrides: [{ productId, effectiveFromPeriod: 0, creditsPerPeriod: '250', changedBy: BY_KEY }],
      });
      const patched = await call(
        { method: 'PATCH', url: `/v1/subscriptions/${subscription.id}`, payload: { overrides: [{ productId, lowBalanceThreshold: '5' }] } },
        OTHER_KEY,
      );
      expect(patched.json<SubscriptionView>().overrides.map((version) => [version.effectiveFromPeriod, version.changedBy])).toEqual([
        [0, BY_KEY],
        [1, BY_OTHER],
      ]);
      const entries = await ledgerOf(await balanceIdOf(customerId, productId));
      // The subscription's creator opened the balance; its grants are the scheduler's, no key's.
      expect(entries.map((entry) => [entry.type, entry.source ?? null, entry.actor])).toEqual([
        ['CreditBalanceOpened', null, { kind: 'key', ...BY_KEY }],
        ['CreditToppedUp', 'grant', null],
      ]);
    });

    it("shows a customer's portal token its subscriptions with the plan's name, and no key that made them", async () => {
      const { customerId, subscription } = await subscribe('100', [{ creditsPerPeriod: '120' }]);
      expect(subscription).toMatchObject({ planName: 'Monthly', createdBy: BY_KEY });
      const link = await call({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions` });
      expect(link.statusCode).toBe(201);
      const portal = { authorization: `Bearer ${link.json<{ token: string }>().token}` };
      const read = await app.inject({ method: 'GET', url: `/v1/customers/${customerId}/subscriptions`, headers: portal });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual({
        items: [{ ...subscription, createdBy: null, canceledBy: null, overrides: subscription.overrides.map((version) => ({ ...version, changedBy: null })) }],
        next: null,
      });
      expect(read.body).not.toContain(BY_KEY.keyId);
      expect(read.body).not.toContain('plans-admin');
      // Its own customer's alone: another's, and a single subscription by id, are refused.
      const other = await subscribe('5');
      expect((await app.inject({ method: 'GET', url: `/v1/customers/${other.customerId}/subscriptions`, headers: portal })).statusCode).toBe(403);
      expect((await app.inject({ method: 'GET', url: `/v1/subscriptions/${subscription.id}`, headers: portal })).statusCode).toBe(403);
    });

    it('grants, shows and changes a product whose id is an Object.prototype member like any other', async () => {
      // Ids are identifiers ("__proto__" is not one), so these are the built-in names a product can
      // take. Each product's watermark is read by id: an inherited member must read as "none".
      const productIds = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', `plain-${randomUUID()}`];
      for (const id of productIds) {
        expect((await call({ method: 'POST', url: '/v1/credit-products', payload: { id, name: `Product ${id}` } })).statusCode).toBe(201);
      }
      const items = productIds.map((productId) => ({ productId, creditsPerPeriod: '10', period: 'month' }));
      const plan = await call({ method: 'POST', url: '/v1/plans', payload: { name: 'Built-in names', items } });
      expect(plan.statusCode).toBe(201);
      // Starting tomorrow: nothing is granted, so every item is read with no watermark.
      const startsAt = new Date(new Date(START).getTime() + 86_400_000);
      const customerId = `cus_${randomUUID()}`;
      const created = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: plan.json<{ id: string }>().id, startsAt: startsAt.toISOString() } });
      expect(created.statusCode).toBe(201);
      const subscription = created.json<SubscriptionView>();
      expect(subscription.items.map((item) => [item.productId, item.grantedThrough])).toEqual(productIds.map((id) => [id, null]));

      const patched = await call({ method: 'PATCH', url: `/v1/subscriptions/${subscription.id}`, payload: { overrides: [{ productId: 'constructor', creditsPerPeriod: '5' }] } });
      expect(patched.statusCode).toBe(200);
      expect(patched.json<SubscriptionView>().overrides.filter((o) => o.productId === 'constructor').map((o) => [o.effectiveFromPeriod, o.creditsPerPeriod])).toEqual([[0, '5']]);

      h.clock.set(new Date(periodStart(startsAt, 'month', 1).getTime() + 1000));
      await h.newScheduler().runOnce();
      for (const productId of productIds) {
        const grants = (await ledgerOf(await balanceIdOf(customerId, productId))).filter((entry) => entry.source === 'grant');
        expect({ productId, grants: grants.map((entry) => [entry.grant?.period, entry.credits]) }).toEqual({
          productId,
          grants: productId === 'constructor' ? [[0, '5'], [1, '5']] : [[0, '10'], [1, '10']],
        });
      }
      const read = await call({ method: 'GET', url: `/v1/subscriptions/${subscription.id}` });
      expect(read.statusCode).toBe(200);
      expect(read.json<SubscriptionView>().items.map((item) => [item.productId, item.grantedThrough])).toEqual(productIds.map((id) => [id, 1]));
    });

    it('answers 404 for unknown plans and subscriptions and 400 for invalid requests', async () => {
      const { subscription } = await subscribe('100');
      expectError(await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId: 'c', planId: 'nope' } }), 404, 'plan_not_found');
      expectError(await call({ method: 'GET', url: '/v1/subscriptions/nope' }), 404, 'subscription_not_found');
      expectError(await call({ method: 'POST', url: '/v1/subscriptions/nope/cancel' }), 404, 'subscription_not_found');
      expectError(
        await call({ method: 'PATCH', url: `/v1/subscriptions/${subscription.id}`, payload: { overrides: [{ productId: 'other', creditsPerPeriod: '1' }] } }),
        400,
        'validation_failed',
      );
      expectError(
        await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId: 'c', planId: subscription.planId, startsAt: 'yesterday' } }),
        400,
        'validation_failed',
      );
      // Spellings the schema's date-time format admits but that name no one instant: refused 400, never an Invalid Date.
      for (const startsAt of ['2026-12-31T23:59:60Z', '2026-03-01T12:00:00+05', '2026-03-01 12:00:00Z']) {
        const refused = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId: 'c', planId: subscription.planId, startsAt } });
        expect({ startsAt, statusCode: refused.statusCode, body: refused.json() }).toEqual({
          startsAt,
          statusCode: 400,
          body: { error: 'validation_failed', message: expect.stringMatching(/^startsAt /) },
        });
      }
      // Year 26 for 2026 on a yearly plan: 2,000 periods due at once, refused before anything is stored;
      // and a start in year 9999.
      const yearly = await call({
        method: 'POST',
        url: '/v1/plans',
        payload: { name: 'Yearly', items: [{ productId: subscription.items[0]!.productId, creditsPerPeriod: '1', period: 'year' }] },
      });
      const customerId = `cus_${randomUUID()}`;
      const typo = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: yearly.json<{ id: string }>().id, startsAt: '0026-03-01T00:00:00Z' } });
      expectError(typo, 400, 'validation_failed');
      expect(typo.json<{ message: string }>().message).toMatch(/^startsAt 0026-03-01T00:00:00.000Z is more than 10 years before now .*: a subscription may start at most 10 years back$/);
      const ahead = await call({ method: 'POST', url: '/v1/subscriptions', payload: { customerId, planId: yearly.json<{ id: string }>().id, startsAt: '9999-12-31T23:59:59Z' } });
      expectError(ahead, 400, 'validation_failed');
      expect(ahead.json<{ message: string }>().message).toMatch(/a subscription may start at most 1 year ahead$/);
      expect(await h.balanceRegistry.listCustomerBalances(customerId)).toEqual([]);
      expect((await call({ method: 'GET', url: `/v1/customers/${customerId}/subscriptions` })).json()).toEqual({ items: [], next: null });
      expectError(
        await call({ method: 'POST', url: '/v1/subscriptions', payload: { id: subscription.id, customerId: 'c', planId: subscription.planId } }),
        409,
        'subscription_already_exists',
      );
    });
  });

  describe('purchases', () => {
    const bundles = [
      { id: 'small', credits: '100', price: { amount: '9.90', currency: 'EUR' } },
      { id: 'large', credits: '1000', price: { amount: '79', currency: 'EUR' } },
    ];

    async function balance() {
      const productId = await createProduct(bundles);
      const customerId = `cus_${randomUUID()}`;
      const opened = await call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId } });
      expect(opened.statusCode).toBe(201);
      return { productId, customerId, balanceId: opened.json<{ id: string }>().id };
    }

    it('buys bundles with prices recorded, idempotently by Idempotency-Key', async () => {
      const { balanceId } = await balance();
      const request = {
        method: 'POST' as const,
        url: `/v1/credit-balances/${balanceId}/purchases`,
        headers: { 'idempotency-key': `k-${randomUUID()}` },
        payload: { bundleId: 'small', quantity: 3 },
      };

      const first = await call(request);
      const retry = await call(request);

      expect(first.statusCode).toBe(201);
      expect(first.headers['idempotent-replayed']).toBe('false');
      expect(first.json()).toMatchObject({
        entry: {
          type: 'CreditToppedUp',
          source: 'purchase',
          credits: '300',
          balanceAfter: '300',
          purchase: { bundleId: 'small', quantity: 3, unitPrice: '9.90', totalPrice: '29.70', currency: 'EUR' },
        },
        balance: { id: balanceId, balance: '300' },
      });
      expect(retry.statusCode).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.json()).toEqual(first.json());
      expectError(await call({ ...request, payload: { bundleId: 'small', quantity: 4 } }), 409, 'idempotency_key_reused');
      // quantity defaults to 1
      const single = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, payload: { bundleId: 'large' } });
      expect(single.json()).toMatchObject({ entry: { credits: '1000', purchase: { quantity: 1, totalPrice: '79' } }, balance: { balance: '1300' } });
      expect((await ledgerOf(balanceId)).filter((entry) => entry.source === 'purchase')).toHaveLength(2);
    });

    it('answers 404 for an unknown bundle or balance and 400 for a bad quantity', async () => {
      const { balanceId } = await balance();
      const url = `/v1/credit-balances/${balanceId}/purchases`;
      expectError(await call({ method: 'POST', url, payload: { bundleId: 'huge' } }), 404, 'bundle_not_found');
      expectError(await call({ method: 'POST', url: '/v1/credit-balances/nope/purchases', payload: { bundleId: 'small' } }), 404, 'balance_not_found');
      for (const quantity of [0, -1, 1.5, '2', 1_000_001]) {
        expectError(await call({ method: 'POST', url, payload: { bundleId: 'small', quantity } }), 400, 'validation_failed');
      }
      expect(await ledgerOf(balanceId)).toHaveLength(1);
    });

    it("lists purchase options for each of a customer's balances", async () => {
      const { productId, customerId, balanceId } = await balance();
      const response = await call({ method: 'GET', url: `/v1/customers/${customerId}/purchase-options` });
      expect(response.json()).toEqual({ items: [{ balanceId, productId, productName: 'API calls', bundles }], next: null });
      expect((await call({ method: 'GET', url: `/v1/customers/cus_${randomUUID()}/purchase-options` })).json()).toEqual({ items: [], next: null });
    });
  });
});
