import { useEffect, useState } from 'preact/hooks';
import { path, type ApiClient } from '../shared/apiClient';
import type { CreditBalance, CreditProduct, LedgerEntry } from '../shared/apiTypes';
import { BalanceFigure } from '../shared/BalanceFigure';
import { AutoRechargeSettings } from '../shared/AutoRechargeSettings';
import { BalanceStatement } from '../shared/BalanceStatement';
import { DownloadLedgerButton } from '../shared/DownloadLedgerButton';
import { LedgerTable } from '../shared/LedgerTable';
import { RecentConsumption } from '../shared/RecentConsumption';
import { ErrorMessage, Pager, usePager, usePolling } from '../shared/ui';
import { useRecentConsumption } from '../shared/useRecentConsumption';
import { BalanceChangeDialog, EditBalanceDialog, type ChangeKind } from './BalanceDialogs';

const REFRESH_MS = 2000;

/**
 * One balance on the Credits tab: its figure, the Top up, Retain usage and Refund dialogs, and its recent
 * consumption, read again every two seconds while the page is open: the newest ledger entries and
 * the last day's consumption per hour and event name. The full ledger and a month's statement are
 * read on demand; its auto-recharge when the card opens.
 */
export function BalanceSection({ api, balance, readAt, onChanged }: { api: ApiClient; balance: CreditBalance; readAt: number; onChanged: () => void }) {
  const [change, setChange] = useState<ChangeKind>();
  const [editing, setEditing] = useState(false);
  const [shown, setShown] = useState(balance);
  if (BigInt(balance.position) > BigInt(shown.position)) setShown(balance);
  // A change (a top-up, newly metered usage) moves the position: the ledger is read again at once.
  const { recent, consumption, readAt: now, error } = useRecentConsumption(api, balance.id, { bucket: 'hour', entries: 10, intervalMs: REFRESH_MS, position: shown.position });
  const bundles = useProductBundles(api, balance.productId);
  const headingId = `balance-${balance.id}`;
  return (
    <section class="card" aria-labelledby={headingId}>
      <div class="title-row">
        <h3 id={headingId} tabIndex={-1}>
          {shown.name} <small>{shown.productId}</small>
        </h3>
        <div class="actions">
          <button type="button" onClick={() => setChange('top-up')}>
            Top up
          </button>
          <button type="button" onClick={() => setChange('retain')}>
            Retain usage
          </button>
          <button type="button" class="secondary" onClick={() => setEditing(true)}>
            Edit balance
          </button>
          <DownloadLedgerButton api={api} balanceId={balance.id} />
        </div>
      </div>
      <BalanceFigure balance={shown} readAt={readAt} now={now} />
      <h4>Recent consumption</h4>
      <RecentConsumption recent={recent} consumption={consumption} error={error} chartTitle="Consumption in the last 24 hours" caption="Newest ledger entries" audience="console" />
      <FullLedger api={api} balanceId={balance.id} position={shown.position} onRefund={(charge) => setChange({ refund: charge })} />
      <BalanceStatement api={api} balanceId={balance.id} />
      <AutoRechargeSettings api={api} balance={shown} bundles={bundles} readBundles={() => readProductBundles(api, balance.productId)} audience="console" />
      <EditBalanceDialog
        api={api}
        balance={shown}
        open={editing}
        onClose={() => setEditing(false)}
        onSaved={(saved) => {
          // Shown at once, as a change's answer is: the list's next read may not have it yet.
          if (BigInt(saved.position) > BigInt(shown.position)) setShown(saved);
          onChanged();
        }}
      />
      <BalanceChangeDialog
        api={api}
        balance={shown}
        kind={change}
        onClose={() => setChange(undefined)}
        focusAfterRefund={() => document.getElementById(headingId)}
        onChanged={(result) => {
          // The answer carries the balance after the change: shown at once, before the read model catches up.
          if (BigInt(result.balance.position) > BigInt(shown.position)) setShown(result.balance);
          onChanged();
        }}
      />
    </section>
  );
}

/**
 * The whole ledger, newest first, a page at a time (the API's `before` cursor), at full width with
 * a Refund button on each charge; read again when the balance changes.
 */
function FullLedger({ api, balanceId, position, onRefund }: { api: ApiClient; balanceId: string; position: string; onRefund: (charge: LedgerEntry) => void }) {
  const [open, setOpen] = useState(false);
  const pager = usePager();
  const [page, setPage] = useState<{ items: LedgerEntry[]; next: string | null }>();
  const before = pager.cursor;
  const error = usePolling(
    async () => {
      setPage(await api.get<{ items: LedgerEntry[]; next: string | null }>(path`/credit-balances/${balanceId}/ledger`, { query: { limit: '50', before } }));
    },
    60_000,
    [api, balanceId, before, position],
    open,
  );
  return (
    <details onToggle={(event) => setOpen(event.currentTarget.open)}>
      <summary>Ledger</summary>
      <ErrorMessage message={error} />
      {page !== undefined && <LedgerTable entries={page.items} caption={`Ledger, page ${pager.number}`} audience="console" onRefund={onRefund} />}
      <Pager pager={pager} next={page?.next} labels={['Newer entries', 'Older entries']} />
    </details>
  );
}

/** The bundles of a balance's product: what its auto-recharge may buy. */
async function readProductBundles(api: ApiClient, productId: string): Promise<CreditProduct['bundles']> {
  return (await api.get<CreditProduct>(path`/credit-products/${productId}`)).bundles;
}

/** The bundles of a balance's product, read once (the auto-recharge form reads them again after a refusal for changed terms). */
function useProductBundles(api: ApiClient, productId: string): CreditProduct['bundles'] | undefined {
  const [bundles, setBundles] = useState<CreditProduct['bundles']>();
  useEffect(() => {
    readProductBundles(api, productId).then(
      (read) => setBundles(read),
      // The setting's own read says what is wrong; a product that cannot be read offers nothing.
      () => setBundles([]),
    );
  }, [api, productId]);
  return bundles;
}
