import { createPostgresPlanStore, createPostgresSubscriptionStore } from '@tally/subscriptions';
import { createTestSchema, migrationsBefore, type MigrationsFolder, type TestSchema } from '@tally/test-support';
import { createPostgresWebhookStore } from '@tally/webhooks';
import pino from 'pino';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const OPS = { keyId: '0123456789ab', keyName: 'ops' };

/**
 * Migration 027 on a deployment that already has plans, subscriptions and webhook endpoints: their
 * rows read with nobody recorded (null, never a guess), and the first change after it records its key.
 */
describe('who made plans, subscriptions and webhook endpoints (migration 027)', () => {
  let before027: MigrationsFolder;
  let db: TestSchema;

  beforeAll(async () => {
    before027 = await migrationsBefore(27);
    db = await createTestSchema({ prefix: 'acting_keys', migrationsDir: before027.dir });
  });

  afterAll(async () => {
    await db?.drop();
    await before027?.remove();
  });

  it('reads rows from before it as made by no recorded key, and records the keys of changes after it', async () => {
    await db.pool.query(`INSERT INTO plans (id, name, items) VALUES ('old-plan', 'Old', '[{"productId":"api","creditsPerPeriod":"10","period":"month","lowBalanceThreshold":null}]')`);
    await db.pool.query(`INSERT INTO subscriptions (id, customer_id, plan_id, starts_at) VALUES ('old-active', 'c1', 'old-plan', now()), ('old-canceled', 'c1', 'old-plan', now())`);
    await db.pool.query(`UPDATE subscriptions SET canceled_at = now() - interval '1 day' WHERE id = 'old-canceled'`);
    await db.pool.query(`INSERT INTO subscription_overrides (subscription_id, product_id, effective_from_period, credits_per_period) VALUES ('old-active', 'api', 0, '20')`);
    await db.pool.query(`INSERT INTO webhook_endpoints (id, url, events, secret, after_position) VALUES ('old-hook', 'https://example.com/hook', '{credit_balance.low}', 'whsec_a', 0)`);

    expect(await db.upgrade()).toEqual(expect.arrayContaining(['027_acting_keys']));

    const plans = createPostgresPlanStore({ pool: db.pool, logger });
    const subscriptions = createPostgresSubscriptionStore({ pool: db.pool, logger });
    const webhooks = createPostgresWebhookStore(db.pool);
    expect(await plans.getPlan('old-plan')).toMatchObject({ id: 'old-plan', createdBy: null, retiredAt: null, retiredBy: null });
    expect(await subscriptions.getSubscription('old-active')).toMatchObject({ createdBy: null, canceledBy: null, overrides: [{ effectiveFromPeriod: 0, changedBy: null }] });
    expect(await webhooks.getEndpoint('old-hook')).toMatchObject({ createdBy: null, updatedBy: null });

    await subscriptions.changeOverrides('old-active', () => [{ productId: 'api', effectiveFromPeriod: 1, creditsPerPeriod: 30_000_000n, lowBalanceThreshold: null }], OPS);
    const canceled = await subscriptions.cancelSubscription('old-active', () => new Date(), OPS);
    expect(canceled).toMatchObject({ createdBy: null, canceledBy: OPS });
    expect(canceled?.overrides.map((version) => [version.effectiveFromPeriod, version.changedBy])).toEqual([
      [0, null],
      [1, OPS],
    ]);
    // Canceled before the key was recorded: that cancellation stands, and no key is made its author.
    expect(await subscriptions.cancelSubscription('old-canceled', () => new Date(), OPS)).toMatchObject({ canceledBy: null });
    expect(await webhooks.rotateSecret('old-hook', 'whsec_b', new Date(), OPS)).toMatchObject({ createdBy: null, updatedBy: OPS });
  });
});
