import { useEffect, useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { CreditProduct, Page } from '../shared/apiTypes';
import { ErrorMessage, Pager, ScrollingTable, usePager } from '../shared/ui';
import { bundlesSummary, rulesSummary, warningLimitSummary } from './productSummary';
import { href } from './router';

/** The credit products, a page at a time. */
export function CatalogPage({ api }: { api: ApiClient }) {
  const [page, setPage] = useState<Page<CreditProduct>>();
  const pager = usePager();
  const [error, setError] = useState<string>();
  const after = pager.cursor;
  useEffect(() => {
    api
      .get<Page<CreditProduct>>('/credit-products', { query: { after, limit: '25' } })
      .then(
        (found) => {
          setPage(found);
          setError(undefined);
        },
        (failure: Error) => setError(failure.message),
      );
  }, [api, after]);
  return (
    <section>
      <div class="title-row">
        <h1>Catalog</h1>
        <a class="button" href={href({ screen: 'product', productId: null })}>
          New credit product
        </a>
      </div>
      <ErrorMessage message={error} />
      <ScrollingTable caption="Credit products" columns={['Product', 'Consumption rules', 'Warning limit', 'Bundles']}>
        <tbody>
          {page?.items.length === 0 && (
            <tr>
              <td colSpan={4}>No credit products yet.</td>
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
