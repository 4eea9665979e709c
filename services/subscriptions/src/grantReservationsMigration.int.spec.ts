import { createTestSchema, migrationsBefore, type MigrationsFolder, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createPostgresSubscriptionStore } from './postgresSubscriptionStore';
import type { SubscriptionStore } from './subscriptionStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** How the previous release records a grant: granted_through alone, never a reservation. */
const PREVIOUS_RELEASE_WATERMARK = `INSERT INTO subscription_grant_watermarks AS w (subscription_id, product_id, granted_through) VALUES ($1, $2, $3)
  ON CONFLICT (subscription_id, product_id)
  DO UPDATE SET granted_through = GREATEST(w.granted_through, excluded.granted_through), updated_at = now()`;

/**
 * Migration 041 on a deployment with watermarks, and processes of the previous release still
 * writing them after it: what they wrote reads as reserved through what they granted, and a
 * reservation without a grant yet reads as nothing granted.
 */
describe('grant reservations (migration 041)', () => {
  let before041: MigrationsFolder;
  let db: TestSchema;
  let store: SubscriptionStore;

  beforeAll(async () => {
    before041 = await migrationsBefore(41);
    db = await createTestSchema({ prefix: 'grant_reservations', migrationsDir: before041.dir });
    store = createPostgresSubscriptionStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await db?.drop();
    await before041?.remove();
  });

  const row = async (subscriptionId: string, productId: string) =>
    (
      await db.pool.query<{ granted: number | null; reserved: number | null }>(
        'SELECT granted_through AS granted, reserved_through AS reserved FROM subscription_grant_watermarks WHERE subscription_id = $1 AND product_id = $2',
        [subscriptionId, productId],
      )
    ).rows[0];
  const watermarks = async (subscriptionId: string) => {
    const subscription = await store.getSubscription(subscriptionId);
    return { granted: Object.fromEntries(subscription!.grantedThrough), reserved: Object.fromEntries(subscription!.reservedThrough) };
  };
  const reserve = (subscriptionId: string, productId: string, period: number) =>
    store.reserveGrant(subscriptionId, productId, () => ({ reserve: period, outcome: undefined }));

  it("reads the previous release's rows as reserved through what they granted, and a reservation without a grant as none granted", async () => {
    await db.pool.query(
      `INSERT INTO plans (id, name, items) VALUES ('plan', 'Old', '[{"productId":"api","creditsPerPeriod":"10","period":"month","lowBalanceThreshold":null},{"productId":"storage","creditsPerPeriod":"5","period":{"days":7},"lowBalanceThreshold":null}]')`,
    );
    await db.pool.query(`INSERT INTO subscriptions (id, customer_id, plan_id, starts_at) VALUES ('old', 'c1', 'plan', now()), ('new', 'c2', 'plan', now())`);
    await db.pool.query(PREVIOUS_RELEASE_WATERMARK, ['old', 'api', 2]);

    expect(await db.upgrade()).toEqual(expect.arrayContaining(['041_subscription_grant_reservations']));
    expect(await row('old', 'api')).toEqual({ granted: 2, reserved: 2 });
    expect(await watermarks('old')).toEqual({ granted: { api: 2 }, reserved: { api: 2 } });

    // A scheduler of the previous release, still running, inserts a row with no reservation.
    await db.pool.query(PREVIOUS_RELEASE_WATERMARK, ['old', 'storage', 5]);
    expect(await row('old', 'storage')).toEqual({ granted: 5, reserved: null });
    expect(await watermarks('old')).toEqual({ granted: { api: 2, storage: 5 }, reserved: { api: 2, storage: 5 } });
    // A reservation on that row starts from what it granted, and an older view never lowers it.
    await reserve('old', 'storage', 6);
    await reserve('old', 'storage', 4);
    // ...nor does the previous release raising what it granted meanwhile.
    await db.pool.query(PREVIOUS_RELEASE_WATERMARK, ['old', 'api', 3]);
    expect(await watermarks('old')).toEqual({ granted: { api: 3, storage: 5 }, reserved: { api: 3, storage: 6 } });

    // Reserved before any grant: granted_through NULL, which is no period granted (not 0, not NaN).
    await reserve('new', 'api', 0);
    expect(await row('new', 'api')).toEqual({ granted: null, reserved: 0 });
    expect(await watermarks('new')).toEqual({ granted: {}, reserved: { api: 0 } });
    // The previous release raises it from nothing (GREATEST ignores the NULL), as this one does.
    await db.pool.query(PREVIOUS_RELEASE_WATERMARK, ['new', 'api', 0]);
    await store.recordGranted('new', 'storage', 1);
    expect(await watermarks('new')).toEqual({ granted: { api: 0, storage: 1 }, reserved: { api: 0, storage: 1 } });
  });
});
