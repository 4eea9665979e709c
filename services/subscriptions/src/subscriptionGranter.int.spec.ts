import { randomUUID } from 'node:crypto';
import { formatCredits, formatNullableCredits, parseCredits } from '@tally/domain';
import type { LedgerService } from '@tally/ledger';
import { createPostgresPlanStore } from './postgresPlanStore';
import { createSubscriptionService } from './subscriptionService';
import { subscriptionView } from './subscriptionView';
import { createSubscriptionsHarness, grantsIn, type SubscriptionsHarness } from './testing/subscriptionsHarness';

jest.setTimeout(120_000);

const START = '2024-01-31T09:00:00.000Z';

describe('subscription granter completing a half-made opening', () => {
  let h: SubscriptionsHarness;

  beforeAll(async () => {
    h = await createSubscriptionsHarness('subs_granter', START);
  });

  afterAll(async () => {
    await h.close();
  });

  it('grants when another writer completes the opening first (its own open then answers 409)', async () => {
    const product = await h.createProduct();
    const customerId = `customer-${randomUUID()}`;
    // A registry row without a stream: an opening that crashed between the two.
    const orphan = `bal-${randomUUID()}`;
    await h.balanceRegistry.registerBalance({ id: orphan, customerId, productId: product.id });

    // Another scheduler completes that opening just before this one tries to.
    let raced = 0;
    const racingLedger: LedgerService = {
      ...h.ledger,
      async openBalance(request) {
        if (request.balanceId === orphan && raced === 0) {
          raced += 1;
          await h.ledger.openBalance(request);
        }
        return h.ledger.openBalance(request);
      },
    };
    const service = createSubscriptionService({
      plans: createPostgresPlanStore({ pool: h.db.pool, logger: h.logger }),
      subscriptions: h.subscriptions,
      ledger: racingLedger,
      catalog: h.catalog,
      balanceRegistry: h.balanceRegistry,
      clock: h.clock,
      logger: h.logger,
    });
    const plan = await service.createPlan({ name: 'Monthly', items: [{ productId: product.id, creditsPerPeriod: '100', period: 'month' }] });
    await service.createSubscription({ customerId, planId: plan.id, startsAt: new Date(START) });

    expect(raced).toBe(1);
    const grants = grantsIn(await h.ledgerOf(orphan));
    expect(grants.map((grant) => [grant.period, formatCredits(grant.credits)])).toEqual([[0, '100']]);
  });
});

describe("a subscription's warning limit on the balance", () => {
  let h: SubscriptionsHarness;

  // A harness per test: a scheduler's run covers every subscription of its schema.
  beforeEach(async () => {
    h = await createSubscriptionsHarness('subs_threshold', '2026-01-10T08:00:00.000Z');
  });

  afterEach(async () => {
    await h?.close();
  });

  const threshold = async (balanceId: string) => formatNullableCredits((await h.ledger.getBalance(balanceId)).balance.lowBalanceThreshold);

  async function monthlyPlan(lowBalanceThreshold: string) {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Monthly', items: [{ productId: product.id, creditsPerPeriod: '100', period: 'month', lowBalanceThreshold }] });
    return { product, plan };
  }

  it('is the one the view shows once the period whose terms changed it is granted', async () => {
    const { product, plan } = await monthlyPlan('10');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date('2026-01-10T00:00:00Z') });
    const balanceId = (await h.balanceRegistry.findBalance(customerId, product.id))!.id;
    expect(await threshold(balanceId)).toBe('10');

    await h.service.changeOverrides(subscription.id, [{ productId: product.id, lowBalanceThreshold: '50' }]);
    // The period in progress keeps its terms, and the balance its limit.
    expect(await threshold(balanceId)).toBe('10');

    h.clock.set('2026-02-15T00:00:00.000Z');
    await h.newScheduler().runOnce();

    const [item] = subscriptionView(await h.service.getSubscription(subscription.id)).items;
    expect(item!.lowBalanceThreshold).toBe('50');
    expect(await threshold(balanceId)).toBe('50');
  });

  it("is set on the customer's existing balance by the subscription's first period", async () => {
    const { product, plan } = await monthlyPlan('10');
    const customerId = `customer-${randomUUID()}`;
    const existing = await h.ledger.openBalance({ customerId, productId: product.id, startingBalance: parseCredits('7'), lowBalanceThreshold: parseCredits('3') });

    await h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date('2026-01-10T00:00:00Z') });

    expect(await threshold(existing.balance.balanceId)).toBe('10');
  });

  it('is applied once: a period granted again, or terms that restate it, leave a later change of the balance alone', async () => {
    const { product, plan } = await monthlyPlan('10');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({
      customerId,
      planId: plan.id,
      startsAt: new Date('2026-01-10T00:00:00Z'),
      overrides: [{ productId: product.id, lowBalanceThreshold: '50' }],
    });
    const balanceId = (await h.balanceRegistry.findBalance(customerId, product.id))!.id;
    await h.service.changeOverrides(subscription.id, [{ productId: product.id, lowBalanceThreshold: '60' }]);
    h.clock.set('2026-02-15T00:00:00.000Z');
    await h.newScheduler().runOnce();
    expect(await threshold(balanceId)).toBe('60');

    // The operator sets the balance's own limit; then every period is granted again, as by a
    // scheduler that lost its watermark, and the terms are restated with other credits.
    await h.ledger.changeSettings(balanceId, { lowBalanceThreshold: parseCredits('70') });
    await h.db.pool.query('DELETE FROM subscription_grant_watermarks WHERE subscription_id = $1', [subscription.id]);
    expect((await h.newScheduler().runOnce()).alreadyGranted).toBe(2);
    await h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '200', lowBalanceThreshold: '60' }]);
    h.clock.set('2026-03-15T00:00:00.000Z');
    await h.newScheduler().runOnce();

    expect(await threshold(balanceId)).toBe('70');
    const settings = (await h.ledgerOf(balanceId)).filter(({ event }) => event.type === 'CreditBalanceSettingsChanged');
    expect(settings.map(({ event }) => event.type === 'CreditBalanceSettingsChanged' && formatNullableCredits(event.lowBalanceThreshold))).toEqual(['60', '70']);
  });

  it('of two subscriptions sharing a balance, is the one whose change was granted last', async () => {
    const { product, plan } = await monthlyPlan('10');
    const customerId = `customer-${randomUUID()}`;
    const first = await h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date('2026-01-10T00:00:00Z') });
    await h.service.createSubscription({
      customerId,
      planId: plan.id,
      startsAt: new Date('2026-01-20T00:00:00Z'),
      overrides: [{ productId: product.id, lowBalanceThreshold: '25' }],
    });
    const balanceId = (await h.balanceRegistry.findBalance(customerId, product.id))!.id;
    h.clock.set('2026-01-20T00:00:00.000Z');
    await h.newScheduler().runOnce();
    expect(await threshold(balanceId)).toBe('25');

    await h.service.changeOverrides(first.subscription.id, [{ productId: product.id, lowBalanceThreshold: '40' }]);
    h.clock.set('2026-02-15T00:00:00.000Z');
    await h.newScheduler().runOnce();
    expect(await threshold(balanceId)).toBe('40');
  });
});
