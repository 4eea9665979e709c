import { balanceStreamId } from '@tally/domain';
import { streamRuns, type EventStore } from '@tally/event-store';
import type { PositionedBalance } from './positionedBalance';
import { foldLedgerRecords } from './foldLedgerRecords';
import { LedgerRecord, toLedgerRecord } from './ledgerRecord';

/**
 * Folds balances from their whole streams, each up to (and including) its own position: the
 * exact state a snapshot at that position holds. undefined when the balance has no event up
 * to there. The streams are read in pages and folded as they come, so memory holds one page of
 * events however long they are.
 */
export async function foldBalanceStreams(
  eventStore: Pick<EventStore, 'readStreamsPaged'>,
  upTo: ReadonlyMap<string, bigint>,
): Promise<Map<string, PositionedBalance | undefined>> {
  const folded = new Map<string, PositionedBalance | undefined>([...upTo.keys()].map((balanceId) => [balanceId, undefined]));
  const balanceOf = new Map([...upTo.keys()].map((balanceId) => [balanceStreamId(balanceId), balanceId]));
  for await (const page of eventStore.readStreamsPaged([...balanceOf.keys()])) {
    // Each run of one stream's events is folded onto what the earlier pages gave.
    for (const run of streamRuns(page)) {
      const balanceId = balanceOf.get(run[0]!.streamId)!;
      const limit = upTo.get(balanceId)!;
      const records = run.filter((recorded) => recorded.position <= limit).map((recorded) => toLedgerRecord(recorded) as LedgerRecord);
      const result = foldLedgerRecords(folded.get(balanceId), records);
      if (result.kind === 'gap') throw new Error(`stream of balance ${balanceId} misses a revision: the event store is inconsistent`);
      if (result.kind === 'changed') folded.set(balanceId, result.folded);
    }
  }
  return folded;
}
