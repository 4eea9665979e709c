import type { CreditProduct } from '@tally/domain';

/** The catalog: credit products, what usage of each costs and the bundles that sell it. */
export interface CatalogStore {
  /** Throws ProductAlreadyExistsError when the id is taken. */
  createProduct(product: CreditProduct): Promise<void>;
  /** Throws ProductNotFoundError when there is no such product. */
  updateProduct(product: CreditProduct): Promise<void>;
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  /** By id; with a page, at most `limit` products with ids after `after` (the API's cursor). */
  listProducts(page?: { readonly after: string | null; readonly limit: number }): Promise<CreditProduct[]>;
}
