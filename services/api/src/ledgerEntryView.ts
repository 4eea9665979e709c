import { formatCredits, type PurchaseDetails, type GrantDetails } from '@tally/domain';
import type { RecordedBalanceEvent } from '@tally/ledger';

/** One ledger line as the API answers it (the LedgerEntry schema): every event type, null where a field does not apply. */
export interface LedgerEntryView {
  readonly id: string;
  readonly type: string;
  readonly credits: string | null;
  readonly balanceAfter: string | null;
  readonly source: string | null;
  readonly reason: string | null;
  readonly usageEventId: string | null;
  readonly usageEvent: string | null;
  readonly quantity: string | null;
  readonly occurredAt: string;
  readonly recordedAt: string;
  readonly revision: string;
  readonly position: string;
  readonly purchase: PurchaseDetails | null;
  readonly grant: GrantDetails | null;
}

type EntryDetails = Omit<LedgerEntryView, 'id' | 'type' | 'occurredAt' | 'recordedAt' | 'revision' | 'position'>;

const NO_DETAILS: EntryDetails = {
  credits: null,
  balanceAfter: null,
  source: null,
  reason: null,
  usageEventId: null,
  usageEvent: null,
  quantity: null,
  purchase: null,
  grant: null,
};

function detailsOf(event: RecordedBalanceEvent['event']): EntryDetails {
  switch (event.type) {
    case 'CreditToppedUp':
      return {
        ...NO_DETAILS,
        credits: formatCredits(event.credits),
        balanceAfter: formatCredits(event.balanceAfter),
        source: event.source,
        reason: event.reason,
        purchase: event.purchase,
        grant: event.grant,
      };
    case 'CreditConsumed':
      return {
        ...NO_DETAILS,
        credits: formatCredits(event.credits),
        balanceAfter: formatCredits(event.balanceAfter),
        source: event.source,
        reason: event.reason,
        usageEventId: event.usage?.eventId ?? null,
        usageEvent: event.usage?.event ?? null,
        quantity: event.usage?.quantity ?? null,
      };
    // Warnings record the balance at the change that caused them: the balance after it.
    case 'LowBalanceWarned':
    case 'CreditBalanceDepleted':
      return { ...NO_DETAILS, balanceAfter: formatCredits(event.balance) };
    case 'CreditBalanceOpened':
    case 'CreditBalanceSettingsChanged':
      return NO_DETAILS;
    default: {
      const unhandled: never = event;
      throw new Error(`Unhandled ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}

export function ledgerEntryView(recorded: RecordedBalanceEvent): LedgerEntryView {
  return {
    id: recorded.eventId,
    type: recorded.event.type,
    ...detailsOf(recorded.event),
    occurredAt: recorded.event.occurredAt,
    recordedAt: recorded.recordedAt.toISOString(),
    revision: recorded.revision.toString(),
    position: recorded.position.toString(),
  };
}
