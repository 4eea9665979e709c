import { path, type ApiClient } from '../shared/apiClient';
import type { CreditProductPage, InvalidCreditProduct, Page, ProductRevision } from '../shared/apiTypes';
import { draftOfStored, type Draft } from './productDraft';

/** A stored product that fails validation, as the API gives it to repair: why and at which revision, and the newest version its history recorded. */
export interface InvalidProductRead {
  readonly invalid: InvalidCreditProduct;
  /**
   * The API answers no stored product that fails validation (GET is 409), only its history: the
   * newest version recorded, as a draft, which a change made outside the API (a hand edit) did not write.
   */
  readonly recorded: { readonly revision: number; readonly draft: Draft } | undefined;
}

const PAGE_SIZE = 100;

/**
 * The catalog's entry for `productId` among those that fail validation, or undefined when it is
 * not one (valid, or no such product). The catalog is listed in id order by code unit, `after`
 * exclusive, and names no product by id: the walk starts at the id less its last character, which
 * comes before it, and stops at the first id past it.
 */
export async function readInvalidProduct(api: ApiClient, productId: string): Promise<InvalidProductRead | undefined> {
  let after: string | undefined = productId.length > 1 ? productId.slice(0, -1) : undefined;
  for (;;) {
    const page = await api.get<CreditProductPage>('/credit-products', { query: { after, limit: String(PAGE_SIZE) } });
    const invalid = (page.invalid ?? []).find((product) => product.id === productId);
    if (invalid !== undefined) {
      const newest = (await api.get<Page<ProductRevision>>(path`/credit-products/${productId}/revisions`, { query: { limit: '1' } })).items[0];
      // A recorded version that fails validation too is answered as stored, without `product`.
      return { invalid, recorded: newest === undefined ? undefined : { revision: newest.revision, draft: draftOfStored(newest.product ?? newest.stored) } };
    }
    const listed = [...page.items.map((product) => product.id), ...(page.invalid ?? []).map((product) => product.id)];
    if (page.next === null || listed.some((id) => id >= productId)) return undefined;
    after = page.next;
  }
}
