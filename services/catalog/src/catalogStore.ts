import type { CreditProduct } from '@tally/domain';

/** Where a balance lives: the registry row, not its amount (that is the fold of its stream). */
export interface BalanceRef {
  readonly id: string;
  readonly customerId: string;
  readonly productId: string;
  readonly createdAt: Date;
}

export interface CatalogStore {
  /** Throws ProductAlreadyExistsError when the id is taken. */
  createProduct(product: CreditProduct): Promise<void>;
  /** Throws ProductNotFoundError when there is no such product. */
  updateProduct(product: CreditProduct): Promise<void>;
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  /** By id; with a page, at most `limit` products with ids after `after` (the API's cursor). */
  listProducts(page?: { readonly after: string | null; readonly limit: number }): Promise<CreditProduct[]>;
  /** Throws DuplicateBalanceError when the customer already has a balance of this product. */
  registerBalance(balance: { id: string; customerId: string; productId: string }): Promise<BalanceRef>;
  getBalance(balanceId: string): Promise<BalanceRef | undefined>;
  findBalance(customerId: string, productId: string): Promise<BalanceRef | undefined>;
  listCustomerBalances(customerId: string): Promise<BalanceRef[]>;
  /** Balances of many customers in one query: the metering consumer asks once per batch. */
  balancesOfCustomers(customerIds: readonly string[]): Promise<Map<string, BalanceRef[]>>;
}
