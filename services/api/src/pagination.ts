import { Type, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import { CURSOR_PATTERN, IDENTIFIER_PATTERN, LIMIT_PATTERN } from './apiSchemas';

const DEFAULT_PAGE_SIZE = 50;

/**
 * Every list answers `{ items, next }`, as the ledger does: `limit` items at most (1-500), and
 * `next` to pass back (here as `after`; the ledger, newest first, takes it as `before`) for the
 * following page, null on the last one. Lists are in id order, compared as strings by code unit.
 */
export const pageQuerystring = {
  limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: `Items per page, 1-500; default ${DEFAULT_PAGE_SIZE}.` })),
  after: Type.Optional(Type.String({ pattern: IDENTIFIER_PATTERN, description: 'The `next` of the previous page.' })),
};

/** The querystring of a list: the page's fields and any of the route's own. */
export const pageQuery = <P extends TProperties>(more: P = {} as P) =>
  Type.Object({ ...more, ...pageQuerystring }, { additionalProperties: false });

export type PageQuery = Static<TObject<typeof pageQuerystring>>;

/** The querystring of a list newest first (the ledger, webhook deliveries): `next` comes back as `before`, a position. */
export const beforePageQuery = (itemsName: string) =>
  Type.Object(
    {
      limit: Type.Optional(Type.String({ pattern: LIMIT_PATTERN, description: `${itemsName} per page, 1-500; default ${DEFAULT_PAGE_SIZE}.` })),
      before: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'The `next` of the previous page.' })),
    },
    { additionalProperties: false },
  );

export interface Page<T> {
  readonly items: T[];
  readonly next: string | null;
}

export function pageSize(query: { readonly limit?: string }): number {
  return query.limit === undefined ? DEFAULT_PAGE_SIZE : Number(query.limit);
}

/** The response schema of a page of `items`. */
export function pageSchema<T extends TSchema>(items: T) {
  return Type.Object({
    items: Type.Array(items),
    next: Type.Unsafe<string | null>({ type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last page.' }),
  });
}

/**
 * A page of `fetched`, which holds the items past the cursor in the list's order and, to tell whether
 * there is a next page without counting, one more than the page size when there are more.
 */
export function pageOf<T>(fetched: readonly T[], size: number, idOf: (item: T) => string): Page<T> {
  const items = fetched.slice(0, size);
  const last = items.at(-1);
  return { items, next: fetched.length > size && last !== undefined ? idOf(last) : null };
}

/** A page from a store's list, which takes the cursor and how many to fetch (one more than the page); items as `view` answers them. */
export async function fetchPage<T, V>(
  query: PageQuery,
  fetch: (range: { readonly after: string | null; readonly limit: number }) => Promise<readonly T[]>,
  idOf: (item: T) => string,
  view: (item: T) => V,
): Promise<Page<V>> {
  const size = pageSize(query);
  const page = pageOf(await fetch({ after: query.after ?? null, limit: size + 1 }), size, idOf);
  return { items: page.items.map((item) => view(item)), next: page.next };
}

/** A page of a list already whole in memory (a customer's balances: one per product). */
export function pageOfList<T>(all: readonly T[], query: PageQuery, idOf: (item: T) => string): Page<T> {
  const sorted = [...all].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  const after = query.after;
  const rest = after === undefined ? sorted : sorted.filter((item) => idOf(item) > after);
  const size = pageSize(query);
  return pageOf(rest.slice(0, size + 1), size, idOf);
}
