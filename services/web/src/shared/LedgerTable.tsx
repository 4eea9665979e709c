import type { LedgerEntry } from './apiTypes';
import { actorLabel, entryCredits, entryLabel, formatCredits, formatTime } from './format';
import { ScrollingTable } from './ui';

/** A purchase as the Reason column says it: the bundle, how many unless one, the price, and why when the ledger says (an auto-recharge). */
function purchaseText(purchase: NonNullable<LedgerEntry['purchase']>, reason: string | null): string {
  const bundles = purchase.quantity === 1 ? purchase.bundleId : `${purchase.bundleId} × ${purchase.quantity}`;
  return `bundle ${bundles}, ${purchase.totalPrice} ${purchase.currency}${reason === null ? '' : `; ${reason}`}`;
}

/**
 * Ledger entries, newest first: what happened, by how much, the balance after it, and who asked
 * for it; a refunded charge says so. With `onRefund` (the console), each charge not yet refunded
 * has a Refund button, named for the charge it refunds.
 */
export function LedgerTable({
  entries,
  caption,
  audience,
  onRefund,
}: {
  entries: readonly LedgerEntry[];
  caption: string;
  audience: 'console' | 'portal';
  onRefund?: (charge: LedgerEntry) => void;
}) {
  const columns = ['When', 'What', 'Credits', 'Balance after', 'Reason', 'By', ...(onRefund !== undefined ? ['Refund'] : [])];
  return (
    <ScrollingTable caption={caption} columns={columns}>
      <tbody>
        {entries.length === 0 && (
          <tr>
            <td colSpan={columns.length}>No entries yet.</td>
          </tr>
        )}
        {entries.map((entry) => (
          <tr key={entry.id}>
            <td>{formatTime(entry.occurredAt)}</td>
            <td>
              {entryLabel(entry)}
              {entry.refundedBy !== null && ' (refunded)'}
            </td>
            <td class="number">{entryCredits(entry)}</td>
            <td class="number">{entry.balanceAfter === null ? '' : formatCredits(entry.balanceAfter)}</td>
            <td>{entry.purchase !== null ? purchaseText(entry.purchase, entry.reason) : (entry.reason ?? '')}</td>
            <td>{actorLabel(entry.actor, audience)}</td>
            {onRefund !== undefined && (
              <td>
                {entry.type === 'CreditConsumed' && entry.refundedBy === null && (
                  <button type="button" class="secondary" aria-label={`Refund ${formatCredits(entry.credits ?? '0')} credits of ${entryLabel(entry)} at ${formatTime(entry.occurredAt)}`} onClick={() => onRefund(entry)}>
                    Refund
                  </button>
                )}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </ScrollingTable>
  );
}
