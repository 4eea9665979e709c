import { BalanceNotFoundError, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import type { Page } from '../pagination';
import { ledgerEntryView, type LedgerAudience, type LedgerEntryView } from './ledgerEntryView';

/** A balance's ledger as the API shows it: its events, newest first a page at a time, or all of them oldest first. */
export interface LedgerHistory {
  /** Throws BalanceNotFoundError for an unknown balance; a page past the end is empty. */
  page(balanceId: string, page: { readonly limit: number; readonly before?: bigint }, audience: LedgerAudience): Promise<Page<LedgerEntryView>>;
  /**
   * Every entry, oldest first, a page of `pageSize` at a time, read as they are taken, so the
   * whole ledger is never in memory. The first `next()` throws BalanceNotFoundError for an unknown
   * balance, before anything is answered.
   */
  chronological(balanceId: string, pageSize: number, audience: LedgerAudience): AsyncGenerator<readonly LedgerEntryView[], void, undefined>;
}

export function createLedgerHistory(deps: { readonly ledger: LedgerService; readonly balanceRegistry: Pick<BalanceRegistry, 'getBalance'> }): LedgerHistory {
  // The registry, not the page, says whether the balance exists: a page past the end is empty, not a 404.
  const mustExist = async (balanceId: string) => {
    if ((await deps.balanceRegistry.getBalance(balanceId)) === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
  };
  return {
    async page(balanceId, page, audience) {
      await mustExist(balanceId);
      const { items, next, refunds } = await deps.ledger.readLedger(balanceId, page);
      return { items: items.map((item) => ledgerEntryView(item, audience, refunds)), next: next === null ? null : next.toString() };
    },

    async *chronological(balanceId, pageSize, audience) {
      await mustExist(balanceId);
      let after: bigint | undefined;
      do {
        const { items, next, refunds } = await deps.ledger.readLedger(balanceId, { order: 'oldest', limit: pageSize, ...(after !== undefined ? { after } : {}) });
        if (items.length > 0) yield items.map((item) => ledgerEntryView(item, audience, refunds));
        after = next ?? undefined;
      } while (after !== undefined);
    },
  };
}
