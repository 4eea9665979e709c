import { randomUUID } from 'node:crypto';
import { formatCredits } from '@tally/domain';
import type { LedgerService } from '@tally/ledger';
import { createPostgresPlanStore } from './postgresPlanStore';
import { createSubscriptionService } from './subscriptionService';
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
