import { balanceStreamId, evolve, fromStoredLedgerEvent, initialBalanceState, type BalanceEvent, type BalanceState, type FoldedBalance } from '@tally/domain';
import { streamRuns, type EventStore, type ExpectedRevision, type StoredPayload } from '@tally/event-store';

export const NO_STREAM = -1n;

export function expectedRevisionOf(revision: bigint): ExpectedRevision {
  return revision === NO_STREAM ? 'no_stream' : revision;
}

/**
 * One stored event folded onto a balance's state: the ledger's one fold step, for foldRecorded and
 * the webhook recorder. `decoded` is the event already decoded by a caller that tells a refused
 * decoding from a refused fold (the recorder names which); otherwise it is decoded here.
 */
export function foldStoredEvent(state: BalanceState, stored: StoredPayload, decoded: BalanceEvent = fromStoredLedgerEvent(stored)): BalanceState {
  return evolve(state, decoded);
}

/**
 * A balance's state after these events. Only the payloads are decoded (fromStoredLedgerEvent): the fold
 * needs neither the metadata nor its derived causation, and every cold balance the consumer
 * meets is folded here.
 */
export function foldRecorded(events: readonly StoredPayload[], from: FoldedBalance = { state: initialBalanceState, revision: NO_STREAM }): FoldedBalance {
  let { state, revision } = from;
  for (const recorded of events) {
    state = foldStoredEvent(state, recorded);
    revision = recorded.revision;
  }
  return { state, revision };
}

export async function loadBalance(eventStore: EventStore, balanceId: string): Promise<FoldedBalance> {
  return foldRecorded(await eventStore.readStream(balanceStreamId(balanceId)));
}

/**
 * Loads many balances at once, from their streams' starts or from the states given in `from`
 * (stored states: only the events after each are read, in the same paged reads), for
 * BalanceStates.loadMany: the metering consumer warms its cache a batch at a time. The
 * streams are folded page by page as they are read, so memory holds one page of events and the
 * states, however long the streams have grown; a missing stream loads as not opened.
 */
export async function loadBalances(
  eventStore: Pick<EventStore, 'readStreamsPaged'>,
  balanceIds: readonly string[],
  options?: { readonly maxPageEvents?: number; readonly from?: ReadonlyMap<string, FoldedBalance> },
): Promise<Map<string, FoldedBalance>> {
  const empty: FoldedBalance = { state: initialBalanceState, revision: NO_STREAM };
  const from = options?.from;
  const loaded = new Map<string, FoldedBalance>(balanceIds.map((balanceId) => [balanceId, from?.get(balanceId) ?? empty]));
  const balanceOf = new Map(balanceIds.map((balanceId) => [balanceStreamId(balanceId), balanceId]));
  const fromRevisions = new Map<string, bigint>();
  if (from !== undefined) for (const [balanceId, start] of from) fromRevisions.set(balanceStreamId(balanceId), start.revision + 1n);
  const readOptions = { ...(options?.maxPageEvents !== undefined ? { maxPageEvents: options.maxPageEvents } : {}), ...(fromRevisions.size > 0 ? { fromRevisions } : {}) };
  for await (const page of eventStore.readStreamsPaged([...balanceOf.keys()], readOptions)) {
    // Each run of one stream's events is folded onto what the earlier pages gave.
    for (const run of streamRuns(page)) {
      const balanceId = balanceOf.get(run[0]!.streamId)!;
      loaded.set(balanceId, foldRecorded(run, loaded.get(balanceId)));
    }
  }
  return loaded;
}
