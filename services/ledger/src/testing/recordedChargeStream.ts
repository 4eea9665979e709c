import { balanceStreamId, decide, initialBalanceState, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { toEventsToAppend } from '../ledgerEvents';

/**
 * For unit specs: a balance's stream as the store returns it, its opening with 1,000 credits
 * (two events) then `charges` charges of 1 credit, all at `at`.
 */
export function recordedChargeStream(context: { readonly balanceId: string; readonly customerId: string; readonly productId: string }, charges: number, at: string): RecordedEvent[] {
  const opening = decide({ type: 'OpenBalance', ...context, name: 'n', lowBalanceThreshold: null, startingBalance: 1000n * MICROS_PER_CREDIT, at }, initialBalanceState);
  const consumed: BalanceEvent[] = Array.from({ length: charges }, (_, i) => ({
    type: 'CreditConsumed',
    credits: MICROS_PER_CREDIT,
    source: 'manual',
    reason: null,
    usage: null,
    balanceAfter: BigInt(999 - i) * MICROS_PER_CREDIT,
    heldAfter: 0n,
    occurredAt: at,
  }));
  return toEventsToAppend([...opening, ...consumed], context, 'history').map((event, index) => ({
    ...event,
    metadata: event.metadata ?? {},
    streamId: balanceStreamId(context.balanceId),
    revision: BigInt(index),
    position: BigInt(index),
    recordedAt: new Date(0),
  }));
}
