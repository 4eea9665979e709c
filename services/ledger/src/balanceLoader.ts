import { balanceStreamId, BalanceState, evolve, initialBalanceState } from '@tally/domain';
import type { EventStore, ExpectedRevision, RecordedEvent } from '@tally/event-store';
import { fromRecordedEvent } from './ledgerEvents';

/** A balance folded from its stream, with the revision to expect when appending next. */
export interface LoadedBalance {
  readonly state: BalanceState;
  /** Last revision of the stream; -1n when the stream does not exist. */
  readonly revision: bigint;
}

export const NO_STREAM = -1n;

export function expectedRevisionOf(revision: bigint): ExpectedRevision {
  return revision === NO_STREAM ? 'no_stream' : revision;
}

export function foldRecorded(events: readonly RecordedEvent[], from: LoadedBalance = { state: initialBalanceState, revision: NO_STREAM }): LoadedBalance {
  let { state, revision } = from;
  for (const recorded of events) {
    state = evolve(state, fromRecordedEvent(recorded).event);
    revision = recorded.revision;
  }
  return { state, revision };
}

export async function loadBalance(eventStore: EventStore, balanceId: string): Promise<LoadedBalance> {
  return foldRecorded(await eventStore.readStream(balanceStreamId(balanceId)));
}

/** Loads many balances in one read (the metering consumer warms its cache a batch at a time). */
export async function loadBalances(eventStore: EventStore, balanceIds: readonly string[]): Promise<Map<string, LoadedBalance>> {
  const streams = await eventStore.readStreams(balanceIds.map(balanceStreamId));
  const loaded = new Map<string, LoadedBalance>();
  for (const balanceId of balanceIds) loaded.set(balanceId, foldRecorded(streams.get(balanceStreamId(balanceId)) ?? []));
  return loaded;
}
