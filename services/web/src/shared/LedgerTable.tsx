import type { LedgerEntry } from './apiTypes';
import { actorLabel, entryLabel, formatCredits, formatTime } from './format';
import { ScrollingTable } from './ui';

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
            <td class="number">
              {entry.credits === null ? '' : `${entry.type === 'CreditConsumed' ? '−' : '+'}${formatCredits(entry.credits)}`}
            </td>
            <td class="number">{entry.balanceAfter === null ? '' : formatCredits(entry.balanceAfter)}</td>
            <td>{entry.purchase !== null ? `bundle ${entry.purchase.bundleId}, ${entry.purchase.totalPrice} ${entry.purchase.currency}` : (entry.reason ?? '')}</td>
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
