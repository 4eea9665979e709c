import type { ActingKey, CreditProduct, CreditProductDto } from '@tally/domain';

/** One version of a product: what it was from `changedAt` until the next revision. */
export interface ProductRevision {
  /** 1 for the product as created, one more for each change. */
  readonly revision: number;
  readonly changedAt: Date;
  /** Null for versions from before this was recorded (migration 026) and for changes made without a key. */
  readonly changedBy: ActingKey | null;
  /** As it was stored then, unvalidated: an old version may fail today's rules and is still history. */
  readonly product: CreditProductDto;
}

/** The catalog: credit products, what usage of each costs and the bundles that sell it. */
export interface CatalogStore {
  /** Throws ProductAlreadyExistsError when the id is taken. `changedBy` is recorded with the revision. */
  createProduct(product: CreditProduct, changedBy?: ActingKey): Promise<void>;
  /** Throws ProductNotFoundError when there is no such product. `changedBy` is recorded with the revision. */
  updateProduct(product: CreditProduct, changedBy?: ActingKey): Promise<void>;
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  /** A product's revisions, newest first: at most `limit`, those before revision `before` when given; empty for an unknown product. */
  listProductRevisions(productId: string, page: { readonly before?: number; readonly limit: number }): Promise<ProductRevision[]>;
  /** By id; with a page, at most `limit` products with ids after `after` (the API's cursor). */
  listProducts(page?: { readonly after: string | null; readonly limit: number }): Promise<CreditProduct[]>;
}
