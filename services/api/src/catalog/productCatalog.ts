import { randomUUID } from 'node:crypto';
import { ProductChangedError, ProductNotFoundError, StoredProductInvalidError, type CatalogStore, type StoredProduct } from '@tally/catalog';
import { creditProductFromDto, creditProductToDto, ValidationError, type ActingKey, type CreditProductDto } from '@tally/domain';
import { fetchPage, pageOf, type Page, type PageQuery } from '../pagination';

export type ProductFields = Partial<Omit<CreditProductDto, 'id'>>;

/** A product as the API answers it: with its revision, which a change may be made against (`If-Match`). */
export type ProductView = CreditProductDto & { readonly revision: number };

/** A stored product that fails today's validation, as a page of the catalog names it: to be repaired by a change. */
export interface InvalidProductView {
  readonly id: string;
  readonly revision: number;
  /** Why it fails validation. */
  readonly message: string;
}

/** A page of the catalog: the products, and those of the same ids' range that fail validation. */
export interface ProductPage extends Page<ProductView> {
  readonly invalid: InvalidProductView[];
}

/** A version of a product as the API answers it. */
export interface ProductRevisionView {
  readonly revision: number;
  readonly changedAt: string;
  /** The key that made the change, null where none was recorded (see ProductRevision). */
  readonly changedBy: ActingKey | null;
  readonly product: ProductView;
}

/** The catalog as the API shows it: credit products as DTOs, validated by the domain on the way in. */
export interface ProductCatalog {
  /** The id is generated (a UUID) when absent; absent fields take their empty defaults. */
  create(fields: ProductFields & { readonly id?: string; readonly name: string }, changedBy: ActingKey): Promise<ProductView>;
  list(query: PageQuery): Promise<ProductPage>;
  /** Throws ProductNotFoundError, as update does, and StoredProductInvalidError for a stored product that fails validation. */
  get(productId: string): Promise<ProductView>;
  /**
   * The fields given replace the stored ones, merged into the product as stored (so a change can
   * repair one that fails validation) under its lock. With `ifRevision`, only a product still at
   * that revision is changed; otherwise ProductChangedError.
   */
  update(productId: string, fields: ProductFields, changedBy: ActingKey, options?: { readonly ifRevision?: number }): Promise<ProductView>;
  /** Its versions, newest first, a page at a time; throws ProductNotFoundError for an unknown product. */
  revisions(productId: string, page: { readonly limit: number; readonly before?: number }): Promise<Page<ProductRevisionView>>;
}

/** The product as answered, or why it cannot be: it fails today's validation. */
function validated({ revision, product }: StoredProduct): ProductView | InvalidProductView {
  try {
    return { ...creditProductToDto(creditProductFromDto(product)), revision };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return { id: product.id, revision, message: error.message };
  }
}

const isInvalid = (view: ProductView | InvalidProductView): view is InvalidProductView => 'message' in view;

export function createProductCatalog(catalog: CatalogStore): ProductCatalog {
  async function stored(productId: string) {
    const product = await catalog.getStoredProduct(productId);
    if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${productId}"`);
    return product;
  }
  return {
    async create(fields, changedBy) {
      const product = creditProductFromDto({ description: '', consumption: [], lowBalanceThreshold: null, bundles: [], ...fields, id: fields.id ?? randomUUID() });
      await catalog.createProduct(product, changedBy);
      return { ...creditProductToDto(product), revision: 1 };
    },
    async list(query) {
      // Paged over the stored rows, valid or not, so that one that fails validation neither
      // shortens the page nor ends the list early; it is named beside the items instead.
      const page = await fetchPage(query, (range) => catalog.listStoredProducts(range), (row) => row.product.id, validated);
      return { items: page.items.filter((view): view is ProductView => !isInvalid(view)), invalid: page.items.filter(isInvalid), next: page.next };
    },
    async get(productId) {
      const view = validated(await stored(productId));
      if (isInvalid(view)) throw new StoredProductInvalidError(`credit product "${productId}" as stored fails validation: ${view.message}; a change of that field repairs it`);
      return view;
    },
    async update(productId, fields, changedBy, options = {}) {
      const changed = await catalog.changeProduct(
        productId,
        (current) => {
          if (options.ifRevision !== undefined && current.revision !== options.ifRevision) {
            throw new ProductChangedError(`credit product "${productId}" is at revision ${current.revision}, not ${options.ifRevision}: read it again and apply the change to that`);
          }
          // Merged into the product as stored, unvalidated, and only the result is validated.
          return creditProductFromDto({ ...current.product, ...fields, id: productId });
        },
        changedBy,
      );
      return { ...changed.product, revision: changed.revision };
    },
    async revisions(productId, page) {
      const fetched = await catalog.listProductRevisions(productId, { limit: page.limit + 1, ...(page.before !== undefined ? { before: page.before } : {}) });
      // Every product has its first revision from its creation (migration 025 gave older ones theirs).
      if (fetched.length === 0 && page.before === undefined) throw new ProductNotFoundError(`no credit product with id "${productId}"`);
      // An empty page past the first is either the end of a product's history or no product: asked.
      if (fetched.length === 0) await stored(productId);
      const views = fetched.map((row) => ({ revision: row.revision, changedAt: row.changedAt.toISOString(), changedBy: row.changedBy, product: { ...row.product, revision: row.revision } }));
      return pageOf(views, page.limit, (view) => String(view.revision));
    },
  };
}
