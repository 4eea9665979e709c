import { balanceIdOfStream, BalanceEvent, fromStoredLedgerEvent } from '@tally/domain';
import type { StoredPayload } from '@tally/event-store';

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
  return {
    balanceId,
    event: fromStoredLedgerEvent(recorded),
    revision: recorded.revision,
    position: recorded.position,
  };
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
