import type { ApiClient, RequestOptions } from '../shared/apiClient';
import type { CreditProduct, CreditProductPage, InvalidCreditProduct, Page, ProductRevision } from '../shared/apiTypes';
import { readInvalidProduct } from './invalidProduct';
import { draftOf, draftOfStored } from './productDraft';

const valid = (id: string): CreditProduct => ({ id, name: id, description: '', consumption: [], lowBalanceThreshold: null, bundles: [], revision: 1 });

/** The catalog's two list routes over `ids` in id order (code units), as the API pages them: `after` exclusive. */
function catalog(ids: readonly string[], invalid: readonly InvalidCreditProduct[], revisions: Readonly<Record<string, ProductRevision[]>> = {}) {
  const asked: Array<Record<string, string | undefined>> = [];
  const all = [...ids, ...invalid.map((product) => product.id)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const api = {
    async get<T>(url: string, options: RequestOptions = {}): Promise<T> {
      const query = options.query ?? {};
      if (url === '/credit-products') {
        asked.push(query);
        const after = query.after;
        const rest = all.filter((id) => after === undefined || id > after);
        const page = rest.slice(0, Number(query.limit));
        const answer: CreditProductPage = {
          items: page.filter((id) => ids.includes(id)).map(valid),
          invalid: invalid.filter((product) => page.includes(product.id)),
          next: rest.length > page.length ? page.at(-1)! : null,
        };
        return answer as T;
      }
      const revisionsOf = /^\/credit-products\/([^/]+)\/revisions$/.exec(url);
      if (revisionsOf !== null) return { items: (revisions[decodeURIComponent(revisionsOf[1]!)] ?? []).slice(0, Number(query.limit)), next: null } satisfies Page<ProductRevision> as T;
      throw new Error(`not expected: GET ${url}`);
    },
  } as unknown as ApiClient;
  return { api, asked };
}

describe('reading a stored product that fails validation, to repair it', () => {
  const broken: InvalidCreditProduct = { id: 'broken-b', revision: 3, message: 'bundles[0].price.currency must be an ISO 4217 code such as "EUR"' };
  const recordedProduct: CreditProduct = { ...valid('broken-b'), name: 'Broken', revision: 3 };
  const recorded = { revision: 3, changedAt: '2026-12-01T00:00:00.000Z', changedBy: null, invalid: false, product: recordedProduct } as ProductRevision;

  it("finds it among the catalog's invalid products, past the products listed before it, with its newest recorded version", async () => {
    const ids = ['broken-a', 'broken-a0', ...Array.from({ length: 150 }, (_, at) => `broken-a${String(at).padStart(3, '0')}`), 'broken-c', 'zeta'];
    const { api, asked } = catalog(ids, [{ id: 'broken-a1', revision: 1, message: 'other' }, broken], { 'broken-b': [recorded] });
    expect(await readInvalidProduct(api, 'broken-b')).toEqual({ invalid: broken, recorded: { revision: 3, draft: draftOf(recordedProduct) } });
    // From just before it (its id less its last character), not from the catalog's start.
    expect(asked[0]).toMatchObject({ after: 'broken-' });
  });

  it('seeds from a recorded version the API marks as failing validation, as it was stored', async () => {
    const stored = { id: 'broken-b', name: 'Broken', bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'eur' } }] };
    const marked = { revision: 3, changedAt: recorded.changedAt, changedBy: null, invalid: true, message: broken.message, stored } as unknown as ProductRevision;
    const { api } = catalog([], [broken], { 'broken-b': [marked] });
    expect(await readInvalidProduct(api, 'broken-b')).toEqual({ invalid: broken, recorded: { revision: 3, draft: draftOfStored(stored) } });
    expect((await readInvalidProduct(api, 'broken-b'))?.recorded?.draft.bundles[0]?.currency).toBe('eur');
  });

  it('says it is not invalid when the catalog lists it as a product, or not at all', async () => {
    const { api } = catalog(['a', 'broken-b'], []);
    expect(await readInvalidProduct(api, 'broken-b')).toBeUndefined();
    expect(await readInvalidProduct(api, 'broken-x')).toBeUndefined();
  });

  it('finds a product whose id is one character from the start, and one with no recorded version', async () => {
    const { api, asked } = catalog(['0', 'c'], [{ ...broken, id: 'b' }]);
    expect(await readInvalidProduct(api, 'b')).toEqual({ invalid: { ...broken, id: 'b' }, recorded: undefined });
    expect(asked[0]?.after).toBeUndefined();
  });
});
