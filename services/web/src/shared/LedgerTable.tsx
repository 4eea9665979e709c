import type { LedgerEntry } from './apiTypes';
import { actorLabel, bundleTerms, entryCredits, entryLabel, formatCredits, formatPrice, formatTime } from './format';
import { ScrollingTable } from './ui';

/**
 * A purchase as the Reason column says it, and why when the ledger says (an auto-recharge): to the
 * console the bundle by its id (the operator's), how many unless one, and the price; to the
 * customer, who never sees bundle ids, what was bought for what.
 */
function purchaseText(entry: LedgerEntry & { purchase: NonNullable<LedgerEntry['purchase']> }, audience: 'console' | 'portal'): string {
  const { purchase, reason } = entry;
  const total = { amount: purchase.totalPrice, currency: purchase.currency };
  const bought =
    audience === 'console'
      ? `bundle ${purchase.quantity === 1 ? purchase.bundleId : `${purchase.bundleId} × ${purchase.quantity}`}, ${formatPrice(total)}`
      : `${purchase.quantity === 1 ? '' : `${purchase.quantity} bundles: `}${bundleTerms({ credits: entry.credits ?? '0', price: total })}`;
  return `${bought}${reason === null ? '' : `; ${reason}`}`;
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
            <td>{entry.purchase !== null ? purchaseText({ ...entry, purchase: entry.purchase }, audience) : (entry.reason ?? '')}</td>
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
