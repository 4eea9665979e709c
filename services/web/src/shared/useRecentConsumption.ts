import { path, type ApiClient } from './apiClient';
import type { Consumption, LedgerEntry } from './apiTypes';
import { usePolling } from './ui';
import { useState } from 'preact/hooks';

/**
 * A balance's recent consumption, read again every `intervalMs` while the page is open, and at
 * once when `position` moves (a change the page made or saw): the newest ledger entries and the
 * consumption per bucket and event name (both undefined until first read), and why the last read
 * failed, if it did (the figures read before stay).
 */
export function useRecentConsumption(api: ApiClient, balanceId: string, options: { bucket: 'hour' | 'day'; entries: number; intervalMs: number; position: string }) {
  const [recent, setRecent] = useState<LedgerEntry[]>();
  const [consumption, setConsumption] = useState<Consumption>();
  const [readAt, setReadAt] = useState(Date.now());
  const error = usePolling(
    async () => {
      const [ledger, used] = await Promise.all([
        api.get<{ items: LedgerEntry[] }>(path`/credit-balances/${balanceId}/ledger`, { query: { limit: String(options.entries) } }),
        // From a projection that may be a moment behind the ledger: the next read catches up.
        api.get<Consumption>(path`/credit-balances/${balanceId}/consumption`, { query: { bucket: options.bucket } }),
      ]);
      setRecent(ledger.items);
      setConsumption(used);
      setReadAt(Date.now());
    },
    options.intervalMs,
    [api, balanceId, options.bucket, options.position],
  );
  return { recent, consumption, readAt, error };
}
