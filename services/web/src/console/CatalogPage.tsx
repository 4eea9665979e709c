import { useEffect, useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { CreditProductPage } from '../shared/apiTypes';
import { ErrorMessage, Pager, ScrollingTable, usePager } from '../shared/ui';
import { bundlesSummary, rulesSummary, warningLimitSummary } from './productSummary';
import { href } from './router';

/**
 * The credit products, a page at a time; beside them, the page's stored products that fail
 * validation (an older version or a hand edit wrote them), which price no usage until repaired:
 * each opens in the product form, which repairs it.
 */
export function CatalogPage({ api }: { api: ApiClient }) {
  const [page, setPage] = useState<CreditProductPage>();
  const pager = usePager();
  const [error, setError] = useState<string>();
  const after = pager.cursor;
  useEffect(() => {
    api
      .get<CreditProductPage>('/credit-products', { query: { after, limit: '25' } })
      .then(
        (found) => {
          setPage(found);
          setError(undefined);
        },
        (failure: Error) => setError(failure.message),
      );
  }, [api, after]);
  // An API from before `invalid` was answered has none to name.
  const invalid = page?.invalid ?? [];
  return (
    <section>
      <div class="title-row">
        <h1>Catalog</h1>
        <a class="button" href={href({ screen: 'product', productId: null })}>
          New credit product
        </a>
      </div>
      <ErrorMessage message={error} />
      {invalid.length > 0 && (
        <section class="notice" aria-labelledby="needs-repair">
          <h2 id="needs-repair">Needs repair</h2>
          <p>
            {invalid.length === 1 ? 'This stored product fails' : `These ${invalid.length} stored products fail`} validation: the usage each prices is dead-lettered as{' '}
            <code>stored_product_invalid</code> until it is saved valid. Open one to repair it: the form says why, beside the field concerned.
          </p>
          <ul>
            {invalid.map((product) => (
              <li key={product.id}>
                <a href={href({ screen: 'product', productId: product.id })}>{product.id}</a> <small>revision {product.revision}</small>: <span class="error">{product.message}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <ScrollingTable caption="Credit products" columns={['Product', 'Consumption rules', 'Warning limit', 'Bundles']}>
        <tbody>
          {page?.items.length === 0 && (
            <tr>
              <td colSpan={4}>{invalid.length === 0 ? 'No credit products yet.' : 'None on this page but those needing repair.'}</td>
            </tr>
          )}
          {page?.items.map((product) => (
            <tr key={product.id}>
              <td>
                <a href={href({ screen: 'product', productId: product.id })}>{product.name}</a> <small>{product.id}</small>
              </td>
              <td>{rulesSummary(product)}</td>
              <td class="number">{warningLimitSummary(product)}</td>
              <td>{bundlesSummary(product)}</td>
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
      <Pager pager={pager} next={page?.next} />
    </section>
  );
}
