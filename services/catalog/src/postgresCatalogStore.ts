import { creditProductFromDto, ValidationError, CreditProductDto, creditProductToDto, type CreditProduct } from '@tally/domain';
import { isUniqueViolation } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { guardCatalogQuery as guarded, ProductAlreadyExistsError, ProductNotFoundError } from './catalogErrors';
import type { CatalogStore } from './catalogStore';

interface ProductRow {
  id: string;
  name: string;
  description: string;
  consumption: CreditProductDto['consumption'];
  low_balance_threshold: string | null;
  bundles: CreditProductDto['bundles'];
}

function productFromRow(row: ProductRow): CreditProduct {
  return creditProductFromDto({
    id: row.id,
    name: row.name,
    description: row.description,
    consumption: row.consumption,
    lowBalanceThreshold: row.low_balance_threshold,
    bundles: row.bundles,
  });
}

export function createPostgresCatalogStore(options: { pool: Pool; logger: Logger }): CatalogStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'catalog-store' });
  const productColumns = 'id, name, description, consumption, low_balance_threshold, bundles';

  return {
    createProduct: (product) =>
      guarded(async () => {
        const dto = creditProductToDto(product);
        try {
          await pool.query(
            `INSERT INTO credit_products (${productColumns}) VALUES ($1, $2, $3, $4, $5, $6)`,
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
        const { rows } = await pool.query<ProductRow>(`SELECT ${productColumns} FROM credit_products WHERE id = $1`, [productId]);
        return rows[0] === undefined ? undefined : productFromRow(rows[0]);
      }),

    listProducts: (page) =>
      guarded(async () => {
        const { rows } =
          page === undefined
            ? await pool.query<ProductRow>(`SELECT ${productColumns} FROM credit_products ORDER BY id`)
            : await pool.query<ProductRow>(
                `SELECT ${productColumns} FROM credit_products WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2`,
                [page.after, page.limit],
              );
        // One stored product that fails today's validation (an older version or a hand edit wrote
        // it) must not fail the whole catalog: the consumer's cache could neither start nor see
        // changes to the others. It is left out here and reported; reading it by id still raises
        // its ValidationError, and the consumer dead-letters the usage it cannot price.
        return rows.flatMap((row) => {
          try {
            return [productFromRow(row)];
          } catch (error) {
            if (!(error instanceof ValidationError)) throw error;
            logger.error({ productId: row.id, err: error }, 'stored credit product fails validation; left out of the catalog listing');
            return [];
          }
        });
      }),
  };
}
