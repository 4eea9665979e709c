import { creditProductFromDto, creditProductToDto } from '@tally/domain';
import { createTestSchema, migrationsBefore, type MigrationsFolder, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createPostgresCatalogStore } from './postgresCatalogStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/**
 * Migrations 025 and 026: a product's history starts at its version of the day the migration runs,
 * and every change after it adds one, with the key that made it when there was one.
 */
describe('credit product revisions (migrations 025 and 026)', () => {
  let before025: MigrationsFolder;
  let db: TestSchema;

  beforeAll(async () => {
    before025 = await migrationsBefore(25);
    db = await createTestSchema({ prefix: 'product_revisions', migrationsDir: before025.dir });
  });

  afterAll(async () => {
    await db?.drop();
    await before025?.remove();
  });

  it('gives a product from before the migration its current version as revision 1, as of its last change, and goes on from there', async () => {
    const updatedAt = new Date(Date.UTC(2026, 2, 1, 12));
    await db.pool.query(
      `INSERT INTO credit_products (id, name, description, consumption, low_balance_threshold, bundles, updated_at)
       VALUES ('api', 'API', 'old', '[{"event":"api_call","credits":"0.5"}]', '10', '[{"id":"b1","credits":"100","price":{"amount":"1.00","currency":"EUR"},"purchaseOption":true}]', $1)`,
      [updatedAt],
    );
    expect(await db.upgrade()).toEqual(expect.arrayContaining(['025_credit_product_revisions', '026_product_revision_changed_by']));

    const store = createPostgresCatalogStore({ pool: db.pool, logger });
    const stored = await store.getProduct('api');
    const [first] = await store.listProductRevisions('api', { limit: 10 });
    // Nobody is known to have made it: no key was recorded before migration 026.
    expect(first).toEqual({ revision: 1, changedAt: updatedAt, changedBy: null, product: creditProductToDto(stored!) });

    await store.updateProduct(creditProductFromDto({ ...creditProductToDto(stored!), description: 'new' }), { keyId: '0123456789ab', keyName: 'ops' });
    await store.updateProduct(creditProductFromDto({ ...creditProductToDto(stored!), description: 'newer' }));
    const revisions = await store.listProductRevisions('api', { limit: 10 });
    expect(revisions.map((revision) => [revision.revision, revision.product.description, revision.changedBy])).toEqual([
      [3, 'newer', null],
      [2, 'new', { keyId: '0123456789ab', keyName: 'ops' }],
      [1, 'old', null],
    ]);
    expect(await store.listProductRevisions('api', { limit: 10, before: 2 })).toEqual([first]);
    expect(await store.listProductRevisions('nope', { limit: 10 })).toEqual([]);
  });
});
