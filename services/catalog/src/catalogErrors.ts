import { TallyError, type ValidationError } from '@tally/domain';
import { isTransientPgError } from '@tally/postgres';
import { guardTransient } from '@tally/runtime';
import type { StoredProduct } from './catalogStore';

export class ProductNotFoundError extends TallyError {
  readonly code = 'product_not_found';
  readonly retriable = false;
}

export class ProductAlreadyExistsError extends TallyError {
  readonly code = 'product_already_exists';
  readonly retriable = false;
}

/**
 * A change made against a revision of the product (HTTP `If-Match`) that is no longer its newest:
 * another change came first. Not retriable as it is: read the product again and apply the change to that.
 */
export class ProductChangedError extends TallyError {
  readonly code = 'product_changed';
  readonly retriable = false;
}

/**
 * The product as stored fails today's validation (an older version or a hand edit wrote it): it
 * cannot be answered as a product until a change repairs it. The same code as the dead letters
 * of the usage it could not price.
 */
export class StoredProductInvalidError extends TallyError {
  readonly code = 'stored_product_invalid';
  readonly retriable = false;
  /**
   * The product as stored and why it fails, for an operator to repair it from (the API answers
   * them with the 409). Only where the asker may read the catalog: a purchase or metering leaves it out.
   */
  readonly stored: { readonly product: StoredProduct; readonly reason: string } | undefined;

  constructor(message: string, options: { readonly cause?: unknown; readonly stored?: { readonly product: StoredProduct; readonly reason: string } } = {}) {
    super(message, options);
    this.stored = options.stored;
  }
}

/**
 * The one wording of it, wherever it is found: the API's answers and the usage's dead letters.
 * `stored`, given to an operator's read, is carried as the error's `stored` with the validation's own reason.
 */
export function storedProductInvalid(productId: string, cause: ValidationError, stored?: StoredProduct): StoredProductInvalidError {
  return new StoredProductInvalidError(`credit product ${productId} as stored fails validation: ${cause.message}; a change of that field repairs it`, {
    cause,
    ...(stored !== undefined ? { stored: { product: stored, reason: cause.message } } : {}),
  });
}

/** PostgreSQL unreachable or restarting: the same call can succeed later. */
export class CatalogUnavailableError extends TallyError {
  readonly code = 'catalog_unavailable';
  readonly retriable = true;
}

/**
 * Runs a query of the catalog's database (the products, and the balance registry beside the
 * ledger): connection failures become CatalogUnavailableError (retriable, 503), so clients see
 * the one outage by one name; anything else passes through.
 */
export const guardCatalogQuery = guardTransient(isTransientPgError, (cause) => new CatalogUnavailableError('the catalog database is unavailable', { cause }));
