import { randomUUID } from 'node:crypto';
import { ProductNotFoundError, type CatalogStore } from '@tally/catalog';
import { creditProductFromDto, creditProductToDto, type ActingKey, type CreditProductDto } from '@tally/domain';
import { fetchPage, pageOf, type Page, type PageQuery } from '../pagination';

export type ProductFields = Partial<Omit<CreditProductDto, 'id'>>;

/** A version of a product as the API answers it. */
export interface ProductRevisionView {
  readonly revision: number;
  readonly changedAt: string;
  /** The key that made the change, null where none was recorded (see ProductRevision). */
  readonly changedBy: ActingKey | null;
  readonly product: CreditProductDto;
}

/** The catalog as the API shows it: credit products as DTOs, validated by the domain on the way in. */
export interface ProductCatalog {
  /** The id is generated (a UUID) when absent; absent fields take their empty defaults. */
  create(fields: ProductFields & { readonly id?: string; readonly name: string }, changedBy: ActingKey): Promise<CreditProductDto>;
  list(query: PageQuery): Promise<Page<CreditProductDto>>;
  /** Throws ProductNotFoundError, as update does. */
  get(productId: string): Promise<CreditProductDto>;
  /** The fields given replace the stored ones. */
  update(productId: string, fields: ProductFields, changedBy: ActingKey): Promise<CreditProductDto>;
  /** Its versions, newest first, a page at a time; throws ProductNotFoundError for an unknown product. */
  revisions(productId: string, page: { readonly limit: number; readonly before?: number }): Promise<Page<ProductRevisionView>>;
}

export function createProductCatalog(catalog: CatalogStore): ProductCatalog {
  async function stored(productId: string) {
    const product = await catalog.getProduct(productId);
    if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${productId}"`);
    return product;
  }
  return {
    async create(fields, changedBy) {
      const product = creditProductFromDto({ description: '', consumption: [], lowBalanceThreshold: null, bundles: [], ...fields, id: fields.id ?? randomUUID() });
      await catalog.createProduct(product, changedBy);
      return creditProductToDto(product);
    },
    list: (query) => fetchPage(query, (range) => catalog.listProducts(range), (product) => product.id, creditProductToDto),
    get: async (productId) => creditProductToDto(await stored(productId)),
    async update(productId, fields, changedBy) {
      const current = await stored(productId);
      const product = creditProductFromDto({ ...creditProductToDto(current), ...fields, id: current.id });
      await catalog.updateProduct(product, changedBy);
      return creditProductToDto(product);
    },
    async revisions(productId, page) {
      const fetched = await catalog.listProductRevisions(productId, { limit: page.limit + 1, ...(page.before !== undefined ? { before: page.before } : {}) });
      // Every product has its first revision from its creation (migration 025 gave older ones theirs).
      if (fetched.length === 0 && page.before === undefined) throw new ProductNotFoundError(`no credit product with id "${productId}"`);
      // An empty page past the first is either the end of a product's history or no product: asked.
      if (fetched.length === 0) await stored(productId);
      const views = fetched.map((row) => ({ revision: row.revision, changedAt: row.changedAt.toISOString(), changedBy: row.changedBy, product: row.product }));
      return pageOf(views, page.limit, (view) => String(view.revision));
    },
  };
}
