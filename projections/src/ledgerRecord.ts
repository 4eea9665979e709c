import { balanceIdOfStream, BalanceEvent, fromStoredLedgerEvent, TallyError } from '@tally/domain';
import type { StoredPayload } from '@tally/event-store';

/**
 * A stored ledger event this release cannot decode or fold (one a newer release wrote, or a bug).
 * Never skipped: the balance's snapshot would be wrong from there on. The projector stops at its
 * batch, retrying (and logging this error, which names the event) until a release that can fold
 * it runs; the ledger cannot fold that balance either. Retrying in itself cannot help.
 */
export class UnfoldableLedgerEventError extends TallyError {
  readonly code = 'unfoldable_ledger_event';
  readonly retriable = false;

  constructor(balanceId: string, event: { readonly revision: bigint; readonly position: bigint; readonly type: string }, what: 'decoded' | 'folded', cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`balance ${balanceId}: its event at revision ${event.revision}, position ${event.position} (${event.type}) cannot be ${what}: ${reason}`, { cause });
  }
}

/** A stored ledger event decoded into the domain's event, with where it sits in the log. */
export interface LedgerRecord {
  readonly balanceId: string;
  readonly event: BalanceEvent;
  readonly revision: bigint;
  readonly position: bigint;
}

/** undefined for events of other streams: the store holds more categories than balances. */
export function toLedgerRecord(recorded: StoredPayload): LedgerRecord | undefined {
  const balanceId = balanceIdOfStream(recorded.streamId);
  if (balanceId === undefined) return undefined;
  let event: BalanceEvent;
  try {
    event = fromStoredLedgerEvent(recorded);
  } catch (error) {
    throw new UnfoldableLedgerEventError(balanceId, recorded, 'decoded', error);
  }
  return { balanceId, event, revision: recorded.revision, position: recorded.position };
}

/** The ledger records of a batch, per balance, each list in position order. */
export function groupByBalance(events: readonly StoredPayload[]): Map<string, LedgerRecord[]> {
  const byBalance = new Map<string, LedgerRecord[]>();
  for (const recorded of events) {
    const record = toLedgerRecord(recorded);
    if (record === undefined) continue;
    const records = byBalance.get(record.balanceId);
    if (records === undefined) byBalance.set(record.balanceId, [record]);
    else records.push(record);
  }
  return byBalance;
}
