import { ApiError } from '../shared/apiClient';
import { draftOf, type Draft } from './productDraft';

/** A stored product that fails validation, as the API answers an operator's GET of it (409), to repair it. */
export interface InvalidProductRead {
  /** The revision stored: the one a save changes (If-Match). */
  readonly revision: number;
  /** Why it fails, naming the field, as the catalog's list says it. */
  readonly reason: string;
  /** The document as stored (what credit_products holds, a hand edit that wrote no revision included), every field as text. */
  readonly draft: Draft;
  /** The document itself, as stored: what a save's rules and bundles are compared with (changeOf). */
  readonly stored: unknown;
}

/**
 * What the 409 `stored_product_invalid` of GET /credit-products/{id} carries to repair the product
 * from; undefined for any other failure, and for a 409 without the stored document (an API from
 * before it carried one), which then cannot be opened to repair.
 */
export function invalidProductOf(failure: unknown): InvalidProductRead | undefined {
  if (!(failure instanceof ApiError) || failure.code !== 'stored_product_invalid') return undefined;
  const { revision, reason, stored } = failure.body;
  if (revision === undefined || reason === undefined || !('stored' in failure.body)) return undefined;
  return { revision, reason, draft: draftOf(stored), stored };
}
