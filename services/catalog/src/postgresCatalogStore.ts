import { creditProductFromDto, ValidationError, CreditProductDto, creditProductToDto } from '@tally/domain';
import { actingKeyParams, isUniqueViolation, rolledBack, withClient } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { guardCatalogQuery as guarded, ProductAlreadyExistsError, ProductNotFoundError, storedProductInvalid } from './catalogErrors';
import type { CatalogStore, ProductRevision, StoredProduct } from './catalogStore';

// Read under the DTO's field names, so that a row is a CreditProductDto as it stands, and its revision.
const PRODUCT_SELECT = 'SELECT id, name, description, consumption, low_balance_threshold AS "lowBalanceThreshold", bundles, revision FROM credit_products';

type ProductRow = CreditProductDto & { readonly revision: number };

function storedOf({ revision, ...product }: ProductRow): StoredProduct {
  return { revision, product };
}

/** $1…$7 of a product's write: its columns, then the whole DTO as its revision. */
function productColumns(dto: CreditProductDto): unknown[] {
  return [dto.id, dto.name, dto.description, JSON.stringify(dto.consumption), dto.lowBalanceThreshold, JSON.stringify(dto.bundles), JSON.stringify(dto)];
}

export function createPostgresCatalogStore(options: { pool: Pool; logger: Logger }): CatalogStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'catalog-store' });

  const store: CatalogStore = {
    createProduct: (product, changedBy) =>
      guarded(async () => {
        const dto = creditProductToDto(product);
        try {
          // The product and its first revision in one statement: the history misses nothing.
          await pool.query(
            `WITH product AS (
               INSERT INTO credit_products (id, name, description, consumption, low_balance_threshold, bundles)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, revision)
             INSERT INTO credit_product_revisions (product_id, revision, product, changed_by_key_id, changed_by_key_name)
             SELECT id, revision, $7, $8, $9 FROM product`,
            [...productColumns(dto), ...actingKeyParams(changedBy)],
          );
        } catch (error) {
          if (isUniqueViolation(error)) throw new ProductAlreadyExistsError(`a credit product with id "${product.id}" already exists`);
          throw error;
        }
        logger.info({ productId: product.id, changedBy }, 'credit product created');
      }),

    updateProduct: async (product, changedBy) => {
      await store.changeProduct(product.id, () => product, changedBy);
    },

    changeProduct: (productId, change, changedBy) =>
      guarded(async () => {
        // A connection that cannot roll back is broken: destroyed, not returned to the pool.
        return withClient(
          pool,
          async (client) => {
            await client.query('BEGIN');
            // Locked until the change is written: a concurrent change waits, then starts from this one.
            const { rows } = await client.query<ProductRow>(`${PRODUCT_SELECT} WHERE id = $1 FOR UPDATE`, [productId]);
            if (rows[0] === undefined) throw new ProductNotFoundError(`no credit product with id "${productId}"`);
            const stored = storedOf(rows[0]);
            const dto = creditProductToDto(change(stored));
            // The change and its revision in one statement; one that changes nothing writes no revision.
            const { rows: written } = await client.query<{ revision: number }>(
              `WITH product AS (
                 UPDATE credit_products
                    SET name = $2, description = $3, consumption = $4, low_balance_threshold = $5, bundles = $6,
                        revision = revision + 1, updated_at = now()
                  WHERE id = $1
                    AND (name, description, consumption, low_balance_threshold, bundles) IS DISTINCT FROM ($2, $3, $4::jsonb, $5, $6::jsonb)
                  RETURNING id, revision)
               INSERT INTO credit_product_revisions (product_id, revision, product, changed_by_key_id, changed_by_key_name)
               SELECT id, revision, $7, $8, $9 FROM product RETURNING revision`,
              [...productColumns({ ...dto, id: productId }), ...actingKeyParams(changedBy)],
            );
            await client.query('COMMIT');
            if (written[0] === undefined) return { revision: stored.revision, product: dto };
            logger.info({ productId, revision: written[0].revision, changedBy }, 'credit product updated');
            return { revision: written[0].revision, product: dto };
          },
          { reusableAfterFailure: rolledBack },
        );
      }),

    getProduct: (productId) =>
      guarded(async () => {
        const { rows } = await pool.query<ProductRow>(`${PRODUCT_SELECT} WHERE id = $1`, [productId]);
        if (rows[0] === undefined) return undefined;
        try {
          return creditProductFromDto(storedOf(rows[0]).product);
        } catch (error) {
          // Not the ValidationError of a bad request: whoever asked (opening a balance, buying a
          // bundle, metering) cannot fix it, an operator's change of the product must.
          if (error instanceof ValidationError) throw storedProductInvalid(productId, error);
          throw error;
        }
      }),

    getStoredProduct: (productId) =>
      guarded(async () => {
        const { rows } = await pool.query<ProductRow>(`${PRODUCT_SELECT} WHERE id = $1`, [productId]);
        return rows[0] === undefined ? undefined : storedOf(rows[0]);
      }),

    listProductRevisions: (productId, page) =>
      guarded(async () => {
        const { rows } = await pool.query<ProductRevision>(
          `SELECT revision, product, changed_at AS "changedAt", acting_key(changed_by_key_id, changed_by_key_name) AS "changedBy"
             FROM credit_product_revisions
            WHERE product_id = $1 AND ($2::integer IS NULL OR revision < $2)
            ORDER BY revision DESC LIMIT $3`,
          [productId, page.before ?? null, page.limit],
        );
        return rows;
      }),

    soldBundle: (productId, bundleId) =>
      guarded(async () => {
        // Each revision is the whole product as stored then (a CreditProductDto): containment on its bundles.
        const { rows } = await pool.query<{ sold: boolean }>(
          `SELECT EXISTS (
             SELECT 1 FROM credit_product_revisions
              WHERE product_id = $1 AND product->'bundles' @> jsonb_build_array(jsonb_build_object('id', $2::text))) AS sold`,
          [productId, bundleId],
        );
        return rows[0]!.sold;
      }),

    listProducts: () =>
      guarded(async () => {
        const { rows } = await pool.query<ProductRow>(`${PRODUCT_SELECT} ORDER BY id`);
        // One stored product that fails today's validation (an older version or a hand edit wrote
        // it) must not fail the whole catalog: the consumer's cache could neither start nor see
        // changes to the others. It is left out here and reported; reading it by id raises
        // StoredProductInvalidError, the consumer dead-letters the usage it cannot price, and the API
        // lists it as invalid (listStoredProducts) for an operator to repair.
        return rows.flatMap((row) => {
          try {
            return [creditProductFromDto(storedOf(row).product)];
          } catch (error) {
            if (!(error instanceof ValidationError)) throw error;
            logger.error({ productId: row.id, err: error }, 'stored credit product fails validation; left out of the catalog listing');
            return [];
          }
        });
      }),

    listStoredProducts: (page) =>
      guarded(async () => {
        const { rows } = await pool.query<ProductRow>(`${PRODUCT_SELECT} WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2`, [page.after, page.limit]);
        return rows.map(storedOf);
      }),
  };
  return store;
}
