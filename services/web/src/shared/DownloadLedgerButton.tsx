import { useState } from 'preact/hooks';
import { errorMessage, path, type ApiClient } from './apiClient';
import { ErrorMessage, useBusyAction } from './ui';

/**
 * Saves a balance's whole ledger as CSV, oldest first (`GET …/ledger.csv`). The file is fetched
 * with the page's credential (a portal token is a header, not a cookie, so a plain link would be
 * refused) and handed to the browser as a download.
 */
export function DownloadLedgerButton({ api, balanceId, label = 'Download ledger (CSV)' }: { api: ApiClient; balanceId: string; label?: string }) {
  const [busy, busyWhile] = useBusyAction();
  const [error, setError] = useState<string>();
  const download = busyWhile(async () => {
    setError(undefined);
    try {
      const file = URL.createObjectURL(await api.download(path`/credit-balances/${balanceId}/ledger.csv`));
      const link = document.createElement('a');
      link.href = file;
      link.download = `ledger-${balanceId.replace(/[^A-Za-z0-9._-]/g, '_')}.csv`;
      link.click();
      // After the click has handed the file over; revoking at once can cancel the download.
      setTimeout(() => URL.revokeObjectURL(file), 60_000);
    } catch (failure) {
      setError(`The ledger could not be downloaded: ${errorMessage(failure)}`);
    }
  });
  return (
    <>
      <button type="button" class="secondary" onClick={() => void download()} disabled={busy} aria-busy={busy}>
        {label}
      </button>
      <ErrorMessage message={error} />
    </>
  );
}
