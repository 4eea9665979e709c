import { creditProductFromDto, ValidationError, CreditProductDto, creditProductToDto } from '@tally/domain';
import { isUniqueViolation } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { guardCatalogQuery as guarded, ProductAlreadyExistsError, ProductNotFoundError } from './catalogErrors';
import type { CatalogStore } from './catalogStore';

// Read under the DTO's field names, so that a row is a CreditProductDto as it stands.
const PRODUCT_SELECT = 'SELECT id, name, description, consumption, low_balance_threshold AS "lowBalanceThreshold", bundles FROM credit_products';

export function createPostgresCatalogStore(options: { pool: Pool; logger: Logger }): CatalogStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'catalog-store' });

  return {
    createProduct: (product) =>
      guarded(async () => {
        const dto = creditProductToDto(product);
        try {
          await pool.query(
            `INSERT INTO credit_products (id, name, description, consumption, low_balance_threshold, bundles) VALUES ($1, $2, $3, $4, $5, $6)`,
            [dto.id, dto.name, dto.description, JSON.stringify(dto.consumption), dto.lowBalanceThreshold, JSON.stringify(dto.bundles)],
          );
        } catch (error) {
          if (isUniqueViolation(error)) throw new ProductAlreadyExistsError(`a credit product with id "${product.id}" already exists`);
          throw error;
        }
        logger.info({ productId: product.id }, 'credit product created');
      }),

    updateProduct: (product) =>
      guarded(async () => {
        const dto = creditProductToDto(product);
        const result = await pool.query(
          `UPDATE credit_products
              SET name = $2, description = $3, consumption = $4, low_balance_threshold = $5, bundles = $6, updated_at = now()
            WHERE id = $1`,
          [dto.id, dto.name, dto.description, JSON.stringify(dto.consumption), dto.lowBalanceThreshold, JSON.stringify(dto.bundles)],
        );
        if (result.rowCount === 0) throw new ProductNotFoundError(`no credit product with id "${product.id}"`);
        logger.info({ productId: product.id }, 'credit product updated');
      }),

    getProduct: (productId) =>
      guarded(async () => {
        const { rows } = await pool.query<CreditProductDto>(`${PRODUCT_SELECT} WHERE id = $1`, [productId]);
        return rows[0] === undefined ? undefined : creditProductFromDto(rows[0]);
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
