import { balanceStreamId } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { foldRecorded, type CommandResult } from '@tally/ledger';
import { balanceViewOfState, type BalanceView } from './balanceView';

/**
 * A balance folded from its stream in the event store, up to and including `throughRevision`
 * when given; undefined when there is no such (open) balance. For the moments the read model
 * cannot answer: a balance opened a moment ago, or a past state.
 */
export async function balanceViewFromEvents(
  eventStore: Pick<EventStore, 'readStream'>,
  balanceId: string,
  throughRevision?: bigint,
): Promise<BalanceView | undefined> {
  const recorded = await eventStore.readStream(
    balanceStreamId(balanceId),
    throughRevision === undefined ? {} : { maxCount: Number(throughRevision) + 1 },
  );
  const last = recorded.at(-1);
  const { state } = foldRecorded(recorded);
  return last === undefined || state.status !== 'open' ? undefined : balanceViewOfState(state, last.position);
}

/**
 * The balance a write answers with: the ledger's result carries the state after the command's
 * events, and for a replayed Idempotency-Key the state the first request left (what it answered
 * then), so nothing here reads the stream. A command that changed nothing (a settings patch to
 * the same values) answers the current state, at the position of the stream's last event.
 */
export async function balanceViewAfterCommand(
  eventStore: Pick<EventStore, 'readStream'>,
  balanceId: string,
  result: CommandResult,
): Promise<BalanceView> {
  const last = result.events.at(-1);
  if (last !== undefined) return balanceViewOfState(result.balance, last.position);
  const [head] = await eventStore.readStream(balanceStreamId(balanceId), { direction: 'backwards', maxCount: 1 });
  // The command found the balance open, and streams only grow: a miss here is a broken store.
  if (head === undefined) throw new Error(`balance ${balanceId} vanished from the event store after a command on it`);
  return balanceViewOfState(result.balance, head.position);
}
