import { BalanceNotFoundError, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import type { Page } from '../pagination';
import { ledgerEntryView, type LedgerEntryView } from './ledgerEntryView';

/** A balance's ledger as the API shows it: its events, newest first, a page at a time. */
export interface LedgerHistory {
  /** Throws BalanceNotFoundError for an unknown balance; a page past the end is empty. */
  page(balanceId: string, page: { readonly limit: number; readonly before?: bigint }): Promise<Page<LedgerEntryView>>;
}

export function createLedgerHistory(deps: { readonly ledger: LedgerService; readonly balanceRegistry: Pick<BalanceRegistry, 'getBalance'> }): LedgerHistory {
  return {
    async page(balanceId, page) {
      // The registry, not the page, says whether the balance exists: a page past the end is empty, not a 404.
      if ((await deps.balanceRegistry.getBalance(balanceId)) === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      const { items, next } = await deps.ledger.readLedger(balanceId, page);
      return { items: items.map(ledgerEntryView), next: next === null ? null : next.toString() };
    },
  };
}
