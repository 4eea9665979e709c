import { balanceStreamId, decide, evolve, type UsageEvent, type FoldedBalance } from '@tally/domain';
import type { AppendRequest, EventToAppend } from '@tally/event-store';
import { expectedRevisionOf, toEventsToAppend } from '@tally/ledger';
import type { UsageCharge, UsageSkip } from './priceUsageBatch';

/** The usage property that names the hold a usage event settles (README, Holds). */
export const HOLD_ID_PROPERTY = 'holdId';

export interface BalanceAppend {
  readonly balanceId: string;
  readonly request: AppendRequest;
  /** The balance once the request is stored, at the revision the append leaves its stream. */
  readonly after: FoldedBalance;
  readonly charges: readonly UsageCharge[];
}

export interface UsageDecision {
  /** One request per touched balance, each with every event of the batch for that balance, in order. */
  readonly appends: readonly BalanceAppend[];
  readonly skips: readonly UsageSkip[];
  /** The charges that become a CreditConsumed. */
  readonly matched: readonly UsageCharge[];
}

export interface DecideUsageBatchInput {
  readonly usages: readonly UsageEvent[];
  readonly charges: readonly UsageCharge[];
  /** First-event ids of charges already stored (see UsageCharge.firstEventId). */
  readonly applied: ReadonlySet<string>;
  /** Current state and revision of every charged balance that has a stream; a missing one has none yet. */
  readonly states: ReadonlyMap<string, FoldedBalance>;
  /** When the consumer decides, ISO-8601: the events' occurredAt. */
  readonly at: string;
}

interface WorkingBalance {
  readonly start: FoldedBalance;
  current: FoldedBalance;
  readonly events: EventToAppend[];
  readonly charges: UsageCharge[];
}

/**
 * Decides a priced batch in memory against the balances' states: the domain's decider runs once
 * per charge, in batch order, on the state the previous charge of the same balance left, so
 * warnings fire exactly where a one-at-a-time consumer would fire them. Pure.
 */
export function decideUsageBatch(input: DecideUsageBatchInput): UsageDecision {
  const skips: UsageSkip[] = [];
  const matched: UsageCharge[] = [];
  const working = new Map<string, WorkingBalance>();
  const decided = new Set<string>();
  for (const charge of input.charges) {
    const { balanceId } = charge.balance;
    // Exactly-once effect: a charge whose CreditConsumed id is stored (a redelivery, however long
    // after) or was decided earlier in this batch (the same usage id twice) is not charged again.
    if (input.applied.has(charge.firstEventId) || decided.has(charge.firstEventId)) {
      skips.push({ index: charge.index, reason: 'already_applied', balanceId });
      continue;
    }
    let entry = working.get(balanceId);
    if (entry === undefined) {
      const start = input.states.get(balanceId);
      if (start === undefined || start.state.status !== 'open') {
        skips.push({ index: charge.index, reason: 'balance_not_opened', balanceId });
        continue;
      }
      entry = { start, current: start, events: [], charges: [] };
      working.set(balanceId, entry);
    }
    const usage = input.usages[charge.index]!;
    // A usage event may settle a hold: its `holdId` property names it, and the decider frees it in
    // this same append (on the balance holding it; elsewhere the id names no open hold).
    const holdId = usage.properties[HOLD_ID_PROPERTY];
    const events = decide(
      {
        type: 'ConsumeUsage',
        credits: charge.credits,
        usage: {
          eventId: usage.id,
          event: usage.event,
          timestamp: new Date(usage.timestamp).toISOString(),
          quantity: charge.quantity,
        },
        ...(typeof holdId === 'string' ? { holdId } : {}),
        at: input.at,
      },
      entry.current.state,
    );
    entry.events.push(...toEventsToAppend(events, charge.balance, charge.commandId, { firstEventId: charge.firstEventId }));
    entry.current = { state: events.reduce(evolve, entry.current.state), revision: entry.current.revision + BigInt(events.length) };
    entry.charges.push(charge);
    decided.add(charge.firstEventId);
    matched.push(charge);
  }
  const appends: BalanceAppend[] = [];
  for (const [balanceId, entry] of working) {
    appends.push({
      balanceId,
      request: { streamId: balanceStreamId(balanceId), expectedRevision: expectedRevisionOf(entry.start.revision), events: entry.events },
      after: entry.current,
      charges: entry.charges,
    });
  }
  return { appends, skips, matched };
}
