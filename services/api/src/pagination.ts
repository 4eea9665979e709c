import { IDENTIFIER_PATTERN, LIMIT_PATTERN } from './apiSchemas';

export const DEFAULT_PAGE_SIZE = 50;

/**
 * Every list answers `{ items, next }`, as the ledger does: `limit` items at most (1-500), and
 * `next` to pass back (here as `after`; the ledger, newest first, takes it as `before`) for the
 * following page, null on the last one. Lists are in id order, compared as strings by code unit.
 */
export const pageQuerystring = {
  limit: { type: 'string', pattern: LIMIT_PATTERN, description: `Items per page, 1-500; default ${DEFAULT_PAGE_SIZE}.` },
  after: { type: 'string', pattern: IDENTIFIER_PATTERN, description: 'The `next` of the previous page.' },
} as const;

export interface PageQuery {
  readonly limit?: string;
  readonly after?: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly next: string | null;
}

export function pageSize(query: PageQuery): number {
  return query.limit === undefined ? DEFAULT_PAGE_SIZE : Number(query.limit);
}

/** The response schema of a page of `items`. */
export function pageSchema(items: object) {
  return {
    type: 'object',
    required: ['items', 'next'],
    properties: {
      items: { type: 'array', items },
      next: { type: ['string', 'null'], description: 'Pass as `after` for the next page; null on the last page.' },
    },
  } as const;
}

/**
 * A page of `fetched`, which holds the items after the cursor in id order and, to tell whether
 * there is a next page without counting, one more than the page size when there are more.
 */
export function pageOf<T>(fetched: readonly T[], size: number, idOf: (item: T) => string): Page<T> {
  const items = fetched.slice(0, size);
  const last = items.at(-1);
  return { items, next: fetched.length > size && last !== undefined ? idOf(last) : null };
}

/** A page of a list already whole in memory (a customer's balances: one per product). */
export function pageOfList<T>(all: readonly T[], query: PageQuery, idOf: (item: T) => string): Page<T> {
  const sorted = [...all].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  const after = query.after;
  const rest = after === undefined ? sorted : sorted.filter((item) => idOf(item) > after);
  const size = pageSize(query);
  return pageOf(rest.slice(0, size + 1), size, idOf);
}
