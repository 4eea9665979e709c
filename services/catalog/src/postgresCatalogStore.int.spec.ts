import { creditProductFromDto } from '@tally/domain';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { ProductChangedError, StoredProductInvalidError } from './catalogErrors';
import { createPostgresCatalogStore } from './postgresCatalogStore';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('the PostgreSQL catalog store', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'catalog_store' });
  });

  afterAll(async () => {
    await db?.drop();
  });

  const product = (id: string, name = 'API credits') =>
    creditProductFromDto({ id, name, description: '', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null, bundles: [] });

  it('reads a stored product of the wrong shape as one that fails validation, and the catalog goes on without it', async () => {
    const store = createPostgresCatalogStore({ pool: db.pool, logger });
    await store.createProduct(product('shape-good'));
    await store.createProduct(product('shape-bad'));
    // A hand edit: a bundle without its price, and a rule that is not an object.
    await db.pool.query(`UPDATE credit_products SET bundles = '[{"id":"b","credits":"1"}]', consumption = '[null]' WHERE id = 'shape-bad'`);

    // The catalog's StoredProductInvalidError, not a TypeError (the consumer dead-letters its usage
    // instead of stalling) nor the ValidationError of a client's bad request (the API answers 409).
    const failure = store.getProduct('shape-bad');
    await expect(failure).rejects.toBeInstanceOf(StoredProductInvalidError);
    await expect(failure).rejects.toThrow(/credit product shape-bad as stored fails validation: consumption\[0\] must be an object/);
    // The consumer's whole-catalog read (its cache's refresh) keeps every other product.
    expect((await store.listProducts()).map((listed) => listed.id)).toEqual(['shape-good']);
    // As stored, unvalidated, with its revision: what the API lists it as, for an operator to repair.
    expect(await store.getStoredProduct('shape-bad')).toMatchObject({ revision: 1, product: { id: 'shape-bad', consumption: [null] } });
  });

  it('changes a product under its lock, against the version the change was made from', async () => {
    const store = createPostgresCatalogStore({ pool: db.pool, logger });
    await store.createProduct(product('locked'));
    const renames = Array.from({ length: 6 }, (_, index) => `Name ${index}`);
    // Each change sees the one before it: every name is appended, none lost.
    await Promise.all(
      renames.map((name) =>
        store.changeProduct('locked', (stored) => creditProductFromDto({ ...stored.product, description: `${stored.product.description}${name};` })),
      ),
    );
    const stored = await store.getStoredProduct('locked');
    expect(stored?.revision).toBe(7);
    expect(stored?.product.description.split(';').filter(Boolean).sort()).toEqual(renames);

    // A change refused by its own function writes nothing.
    await expect(
      store.changeProduct('locked', () => {
        throw new ProductChangedError('changed meanwhile');
      }),
    ).rejects.toBeInstanceOf(ProductChangedError);
    expect((await store.getStoredProduct('locked'))?.revision).toBe(7);
  });
});
