import { balanceStreamId } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { FoldedBalance } from './foldedBalance';
import { foldLedgerRecords } from './foldLedgerRecords';
import { LedgerRecord, toLedgerRecord } from './ledgerRecord';

/**
 * Folds balances from their whole streams, each up to (and including) its own position: the
 * exact state a snapshot at that position holds. undefined when the balance has no event up
 * to there. One read for all the streams.
 */
export async function foldBalanceStreams(
  eventStore: EventStore,
  upTo: ReadonlyMap<string, bigint>,
): Promise<Map<string, FoldedBalance | undefined>> {
  const balanceIds = [...upTo.keys()];
  const streams = await eventStore.readStreams(balanceIds.map(balanceStreamId));
  const folded = new Map<string, FoldedBalance | undefined>();
  for (const balanceId of balanceIds) {
    const limit = upTo.get(balanceId)!;
    const records = (streams.get(balanceStreamId(balanceId)) ?? [])
      .filter((recorded) => recorded.position <= limit)
      .map((recorded) => toLedgerRecord(recorded) as LedgerRecord);
    const result = foldLedgerRecords(undefined, records);
    if (result.kind === 'gap') throw new Error(`stream of balance ${balanceId} misses a revision: the event store is inconsistent`);
    folded.set(balanceId, result.kind === 'changed' ? result.folded : undefined);
  }
  return folded;
}
