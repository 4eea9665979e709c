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

/** A product as it stands, with the number of its newest revision: what a change is made against. */
export interface StoredProduct {
  readonly revision: number;
  /** Unvalidated: it may fail today's rules (an older version or a hand edit wrote it), and is still shown, to be repaired. */
  readonly product: CreditProductDto;
}

/** The catalog: credit products, what usage of each costs and the bundles that sell it. */
export interface CatalogStore {
  /** Throws ProductAlreadyExistsError when the id is taken. `changedBy` is recorded with the revision. */
  createProduct(product: CreditProduct, changedBy?: ActingKey): Promise<void>;
  /** Replaces the product whatever it was; throws ProductNotFoundError when there is no such product. */
  updateProduct(product: CreditProduct, changedBy?: ActingKey): Promise<void>;
  /**
   * Changes a product under its row lock: `change` gets it as it stands and returns what it is to
   * be (or throws, and nothing is written), so concurrent changes each start from the one before
   * and none is lost. Answers the product as it then stands; a change that changes nothing keeps
   * the revision. Throws ProductNotFoundError when there is no such product. `changedBy` is
   * recorded with the revision.
   */
  changeProduct(productId: string, change: (stored: StoredProduct) => CreditProduct, changedBy?: ActingKey): Promise<StoredProduct>;
  /** Validated: throws StoredProductInvalidError (the cause its ValidationError) for a stored product that fails today's rules. */
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  getStoredProduct(productId: string): Promise<StoredProduct | undefined>;
  /** A product's revisions, newest first: at most `limit`, those before revision `before` when given; empty for an unknown product. */
  listProductRevisions(productId: string, page: { readonly before?: number; readonly limit: number }): Promise<ProductRevision[]>;
  /**
   * Whether any revision the catalog keeps of the product (the current one among them) has a bundle
   * with this id, purchase option or not: whether a purchase of it could ever have been priced.
   */
  soldBundle(productId: string, bundleId: string): Promise<boolean>;
  /** The whole catalog by id, validated; a stored product that fails validation is left out (and logged). */
  listProducts(): Promise<CreditProduct[]>;
  /** As stored, unvalidated, by id: at most `limit` products with ids after `after` (the API's pages). */
  listStoredProducts(page: { readonly after: string | null; readonly limit: number }): Promise<StoredProduct[]>;
}
