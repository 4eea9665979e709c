import { randomUUID } from 'node:crypto';
import { ProductChangedError, ProductNotFoundError, storedProductInvalid, type CatalogStore, type ProductRevision, type StoredProduct } from '@tally/catalog';
import { creditProductFromDto, creditProductFromRequest, creditProductToDto, ValidationError, type ActingKey, type CreditProductDto } from '@tally/domain';
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
  /** The product as stored, whatever its shape: what a repair starts from. */
  readonly stored: unknown;
}

/** A page of the catalog: the products, and those of the same ids' range that fail validation. */
export interface ProductPage extends Page<ProductView> {
  readonly invalid: InvalidProductView[];
}

/**
 * A version of a product as the API answers it: as today reads it (older shapes normalised, as
 * validation reads them), or, for one that fails today's validation, why and the document as stored.
 */
export type ProductRevisionView = {
  readonly revision: number;
  readonly changedAt: string;
  /** The key that made the change, null where none was recorded (see ProductRevision). */
  readonly changedBy: ActingKey | null;
} & ({ readonly invalid: false; readonly product: ProductView } | { readonly invalid: true; readonly message: string; readonly stored: unknown });

/** The catalog as the API shows it: credit products as DTOs, validated by the domain on the way in. */
export interface ProductCatalog {
  /** The id is generated (a UUID) when absent; absent fields take their empty defaults. */
  create(fields: ProductFields & { readonly id?: string; readonly name: string }, changedBy: ActingKey): Promise<ProductView>;
  list(query: PageQuery): Promise<ProductPage>;
  /**
   * Throws ProductNotFoundError, as update does, and StoredProductInvalidError for a stored product
   * that fails validation, carrying it as stored (a hand edit may have written no revision of it).
   */
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

/** A stored document as today reads it (its one written form), or why it cannot be: the ValidationError. */
function readStored(product: CreditProductDto): { readonly product: CreditProductDto } | { readonly failure: ValidationError } {
  try {
    return { product: creditProductToDto(creditProductFromDto(product)) };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return { failure: error };
  }
}

/** The product as answered, or why it cannot be: it fails today's validation. */
function validated({ revision, product }: StoredProduct): ProductView | InvalidProductView {
  const read = readStored(product);
  return 'failure' in read ? { id: product.id, revision, message: read.failure.message, stored: product } : { ...read.product, revision };
}

/**
 * Old versions were stored as their release wrote them (bundles without `purchaseOption`, say) or as
 * a hand edit left them: each is answered as today's validation reads it, which is how the catalog
 * reads and prices it, or, where no reading makes a product of it, marked invalid with the document.
 */
function revisionView({ revision, changedAt, changedBy, product }: ProductRevision): ProductRevisionView {
  const at = { revision, changedAt: changedAt.toISOString(), changedBy };
  const read = readStored(product);
  return 'failure' in read ? { ...at, invalid: true, message: read.failure.message, stored: product } : { ...at, invalid: false, product: { ...read.product, revision } };
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
      const product = creditProductFromRequest({ description: '', consumption: [], lowBalanceThreshold: null, bundles: [], ...fields, id: fields.id ?? randomUUID() });
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
      const product = await stored(productId);
      const read = readStored(product.product);
      if ('failure' in read) throw storedProductInvalid(productId, read.failure, product);
      return { ...read.product, revision: product.revision };
    },
    async update(productId, fields, changedBy, options = {}) {
      const changed = await catalog.changeProduct(
        productId,
        (current) => {
          if (options.ifRevision !== undefined && current.revision !== options.ifRevision) {
            throw new ProductChangedError(`credit product "${productId}" is at revision ${current.revision}, not ${options.ifRevision}: read it again and apply the change to that`);
          }
          // Merged into the product as stored, unvalidated, and only the result is validated; what
          // only a write is held to (no rule repeated whole, ...) in the fields given, so that a
          // product stored before those refusals takes a change of its other fields.
          return creditProductFromRequest({ ...current.product, ...fields, id: productId }, fields);
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
      const views = fetched.map(revisionView);
      return pageOf(views, page.limit, (view) => String(view.revision));
    },
  };
}
