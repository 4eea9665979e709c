import type { Consumption, LedgerEntry } from './apiTypes';
import { ConsumptionChart } from './ConsumptionChart';
import { LedgerTable } from './LedgerTable';
import { ErrorMessage } from './ui';

/**
 * A balance's recent consumption (useRecentConsumption's): the chart beside the newest ledger
 * entries. A failed read says so where the figures are; those read before stay shown. Before
 * any read succeeded there is nothing to show but why, not a chart loading or an empty ledger.
 */
export function RecentConsumption({
  recent,
  consumption,
  error,
  chartTitle,
  caption,
  audience,
}: {
  recent: readonly LedgerEntry[] | undefined;
  consumption: Consumption | undefined;
  error: string | undefined;
  chartTitle: string;
  caption: string;
  audience: 'console' | 'portal';
}) {
  return (
    <>
      <ErrorMessage message={error} />
      {(recent !== undefined || error === undefined) && (
        <div class="two-columns">
          <ConsumptionChart consumption={consumption} title={chartTitle} />
          <LedgerTable entries={recent ?? []} caption={caption} audience={audience} />
        </div>
      )}
    </>
  );
}
