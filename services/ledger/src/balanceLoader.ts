import { balanceStreamId, evolve, initialBalanceState, type FoldedBalance } from '@tally/domain';
import { streamRuns, type EventStore, type ExpectedRevision, type RecordedEvent } from '@tally/event-store';
import { fromRecordedEvent } from './ledgerEvents';

export const NO_STREAM = -1n;

export function expectedRevisionOf(revision: bigint): ExpectedRevision {
  return revision === NO_STREAM ? 'no_stream' : revision;
}

export function foldRecorded(events: readonly RecordedEvent[], from: FoldedBalance = { state: initialBalanceState, revision: NO_STREAM }): FoldedBalance {
  let { state, revision } = from;
  for (const recorded of events) {
    state = evolve(state, fromRecordedEvent(recorded).event);
    revision = recorded.revision;
  }
  return { state, revision };
}

export async function loadBalance(eventStore: EventStore, balanceId: string): Promise<FoldedBalance> {
  return foldRecorded(await eventStore.readStream(balanceStreamId(balanceId)));
}

/**
 * Loads many balances at once, from their streams' starts (BalanceStates.loadMany, for the ones
 * without a snapshot: the metering consumer warms its cache a batch at a time). The
 * streams are folded page by page as they are read, so memory holds one page of events and the
 * states, however long the streams have grown; a missing stream loads as not opened.
 */
export async function loadBalances(
  eventStore: Pick<EventStore, 'readStreamsPaged'>,
  balanceIds: readonly string[],
  options?: { readonly maxPageEvents?: number },
): Promise<Map<string, FoldedBalance>> {
  const empty: FoldedBalance = { state: initialBalanceState, revision: NO_STREAM };
  const loaded = new Map<string, FoldedBalance>(balanceIds.map((balanceId) => [balanceId, empty]));
  const balanceOf = new Map(balanceIds.map((balanceId) => [balanceStreamId(balanceId), balanceId]));
  for await (const page of eventStore.readStreamsPaged([...balanceOf.keys()], options)) {
    // Each run of one stream's events is folded onto what the earlier pages gave.
    for (const run of streamRuns(page)) {
      const balanceId = balanceOf.get(run[0]!.streamId)!;
      loaded.set(balanceId, foldRecorded(run, loaded.get(balanceId)));
    }
  }
  return loaded;
}
