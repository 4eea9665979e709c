import { randomUUID } from 'node:crypto';
import { balanceStreamId, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { toEventsToAppend, type BalanceContext } from '../ledgerEvents';

/**
 * For integration specs: a long history on an opened balance, `count` CreditConsumed events of
 * 1 credit each after revision `after`, through the event store's own append, so the rows are
 * what production writes, in calls of `batch` events: seconds for 150,000 events, where a call
 * per event takes minutes and a hand-written INSERT drifts from the stored encoding.
 */
export async function appendChargeHistory(
  eventStore: Pick<EventStore, 'appendMany'>,
  context: BalanceContext,
  options: { readonly after: bigint; readonly count: number; readonly startingBalance: bigint; readonly batch: number },
): Promise<void> {
  const { after, count, startingBalance, batch } = options;
  const streamId = balanceStreamId(context.balanceId);
  const occurredAt = new Date().toISOString();
  let expectedRevision = after;
  for (let done = 0; done < count; done += batch) {
    const events = Array.from({ length: Math.min(batch, count - done) }, (_, i): BalanceEvent => ({
      type: 'CreditConsumed',
      credits: MICROS_PER_CREDIT,
      source: 'manual',
      reason: 'history',
      usage: null,
      balanceAfter: startingBalance - BigInt(done + i + 1) * MICROS_PER_CREDIT,
      heldAfter: 0n,
      occurredAt,
    }));
    // A new command id per call: the events' ids derive from it and their index, and specs
    // append several histories to one schema.
    const [result] = await eventStore.appendMany([{ streamId, expectedRevision, events: toEventsToAppend(events, context, `history:${randomUUID()}`) }]);
    expectedRevision = result!.nextExpectedRevision;
  }
}
