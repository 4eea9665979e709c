import { balanceStreamId } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { BalanceSnapshot } from './balanceSnapshot';
import { foldBalanceSnapshot } from './foldBalanceSnapshot';
import { LedgerRecord, toLedgerRecord } from './ledgerRecord';

/**
 * Folds balances from their whole streams, each up to (and including) its own position: the
 * exact snapshot a projection at that position holds. undefined when the balance has no
 * event up to there. One read for all the streams.
 */
export async function foldBalanceStreams(
  eventStore: EventStore,
  upTo: ReadonlyMap<string, bigint>,
): Promise<Map<string, BalanceSnapshot | undefined>> {
  const balanceIds = [...upTo.keys()];
  const streams = await eventStore.readStreams(balanceIds.map(balanceStreamId));
  const snapshots = new Map<string, BalanceSnapshot | undefined>();
  for (const balanceId of balanceIds) {
    const limit = upTo.get(balanceId)!;
    const records = (streams.get(balanceStreamId(balanceId)) ?? [])
      .filter((recorded) => recorded.position <= limit)
      .map((recorded) => toLedgerRecord(recorded) as LedgerRecord);
    const result = foldBalanceSnapshot(undefined, records);
    if (result.kind === 'gap') throw new Error(`stream of balance ${balanceId} misses a revision: the event store is inconsistent`);
    snapshots.set(balanceId, result.kind === 'changed' ? result.snapshot : undefined);
  }
  return snapshots;
}
