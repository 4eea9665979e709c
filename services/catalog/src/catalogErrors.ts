import { TallyError } from '@tally/domain';

export class ProductNotFoundError extends TallyError {
  readonly code = 'product_not_found';
  readonly retriable = false;
}

export class ProductAlreadyExistsError extends TallyError {
  readonly code = 'product_already_exists';
  readonly retriable = false;
}

export class BalanceNotFoundError extends TallyError {
  readonly code = 'balance_not_found';
  readonly retriable = false;
}

/** A second balance for the same customer and product. */
export class DuplicateBalanceError extends TallyError {
  readonly code = 'balance_already_exists';
  readonly retriable = false;
  constructor(
    message: string,
    readonly existingBalanceId: string,
  ) {
    super(message);
  }
}

/** PostgreSQL unreachable or restarting: the same call can succeed later. */
export class CatalogUnavailableError extends TallyError {
  readonly code = 'catalog_unavailable';
  readonly retriable = true;
}
