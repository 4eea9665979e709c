import { creditProductFromDto, ValidationError, CreditProductDto, creditProductToDto } from '@tally/domain';
import { actingKeyParams, isUniqueViolation } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { guardCatalogQuery as guarded, ProductAlreadyExistsError, ProductNotFoundError } from './catalogErrors';
import type { CatalogStore, ProductRevision } from './catalogStore';

// Read under the DTO's field names, so that a row is a CreditProductDto as it stands.
const PRODUCT_SELECT = 'SELECT id, name, description, consumption, low_balance_threshold AS "lowBalanceThreshold", bundles FROM credit_products';

/** $1…$7 of a product's write: its columns, then the whole DTO as its revision. */
function productColumns(dto: CreditProductDto): unknown[] {
  return [dto.id, dto.name, dto.description, JSON.stringify(dto.consumption), dto.lowBalanceThreshold, JSON.stringify(dto.bundles), JSON.stringify(dto)];
}

export function createPostgresCatalogStore(options: { pool: Pool; logger: Logger }): CatalogStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'catalog-store' });

  return {
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

    updateProduct: (product, changedBy) =>
      guarded(async () => {
        const dto = creditProductToDto(product);
        // The change and its revision in one statement. The row lock orders concurrent updates, so
        // each takes the next revision; an update that changes nothing writes no revision.
        const result = await pool.query(
          `WITH product AS (
             UPDATE credit_products
                SET name = $2, description = $3, consumption = $4, low_balance_threshold = $5, bundles = $6,
                    revision = revision + 1, updated_at = now()
              WHERE id = $1
                AND (name, description, consumption, low_balance_threshold, bundles) IS DISTINCT FROM ($2, $3, $4::jsonb, $5, $6::jsonb)
              RETURNING id, revision)
           INSERT INTO credit_product_revisions (product_id, revision, product, changed_by_key_id, changed_by_key_name)
           SELECT id, revision, $7, $8, $9 FROM product`,
          [...productColumns(dto), ...actingKeyParams(changedBy)],
        );
        if (result.rowCount === 0) {
          const { rowCount } = await pool.query('SELECT 1 FROM credit_products WHERE id = $1', [dto.id]);
          if (rowCount === 0) throw new ProductNotFoundError(`no credit product with id "${product.id}"`);
          return;
        }
        logger.info({ productId: product.id, changedBy }, 'credit product updated');
      }),

    getProduct: (productId) =>
      guarded(async () => {
        const { rows } = await pool.query<CreditProductDto>(`${PRODUCT_SELECT} WHERE id = $1`, [productId]);
        return rows[0] === undefined ? undefined : creditProductFromDto(rows[0]);
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

    listProducts: (page) =>
      guarded(async () => {
        const { rows } =
          page === undefined
            ? await pool.query<CreditProductDto>(`${PRODUCT_SELECT} ORDER BY id`)
            : await pool.query<CreditProductDto>(
                `${PRODUCT_SELECT} WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2`,
                [page.after, page.limit],
              );
        // One stored product that fails today's validation (an older version or a hand edit wrote
        // it) must not fail the whole catalog: the consumer's cache could neither start nor see
        // changes to the others. It is left out here and reported; reading it by id still raises
        // its ValidationError, and the consumer dead-letters the usage it cannot price.
        return rows.flatMap((row) => {
          try {
            return [creditProductFromDto(row)];
          } catch (error) {
            if (!(error instanceof ValidationError)) throw error;
            logger.error({ productId: row.id, err: error }, 'stored credit product fails validation; left out of the catalog listing');
            return [];
          }
        });
      }),
  };
}
