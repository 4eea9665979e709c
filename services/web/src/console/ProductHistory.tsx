import { useState } from 'preact/hooks';
import { path, type ApiClient } from '../shared/apiClient';
import type { Page, ProductRevision } from '../shared/apiTypes';
import { formatTime, keyLabel } from '../shared/format';
import { ErrorMessage, Pager, ScrollingTable, usePager, usePolling } from '../shared/ui';
import { bundlesWithPricesSummary, rulesSummary, warningLimitSummary } from './productSummary';

/**
 * A product's versions, newest first, read when opened and again after each save (`version`):
 * what its rules and prices were, and since when, for a charge made under an earlier version.
 */
export function ProductHistory({ api, productId, version }: { api: ApiClient; productId: string; version: number }) {
  const [open, setOpen] = useState(false);
  const pager = usePager();
  const [page, setPage] = useState<Page<ProductRevision>>();
  const before = pager.cursor;
  const error = usePolling(
    async () => {
      setPage(await api.get<Page<ProductRevision>>(path`/credit-products/${productId}/revisions`, { query: { limit: '20', before } }));
    },
    60_000,
    [api, productId, before, version],
    open,
  );
  return (
    <details onToggle={(event) => setOpen(event.currentTarget.open)}>
      <summary>History</summary>
      <ErrorMessage message={error} />
      {page !== undefined && (
        <ScrollingTable caption="Versions of this product, newest first" columns={['Revision', 'Since', 'By', 'Name', 'Consumption rules', 'Warning limit', 'Bundles']}>
          <tbody>
            {page.items.map(({ revision, changedAt, changedBy, product, message }) => (
              <tr key={revision}>
                <td class="number">{revision}</td>
                <td>{formatTime(changedAt)}</td>
                <td>{changedBy === null ? '' : keyLabel(changedBy)}</td>
                {product === undefined ? (
                  // A version that fails today's validation has no product to summarise, only why.
                  <td colSpan={4}>Fails validation: {message}</td>
                ) : (
                  <>
                    <td>{product.name}</td>
                    <td>{rulesSummary(product)}</td>
                    <td class="number">{warningLimitSummary(product)}</td>
                    <td>{bundlesWithPricesSummary(product)}</td>
                  </>
                )}
              </tr>
            ))}
          </tbody>
        </ScrollingTable>
      )}
      <Pager pager={pager} next={page?.next} labels={['Newer versions', 'Older versions']} />
    </details>
  );
}

