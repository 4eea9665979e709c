import { Type, type Static } from '@sinclair/typebox';
import { formatCredits, type BalanceEvent } from '@tally/domain';
import type { RecordedBalanceEvent } from '@tally/ledger';
import { answeredCredits, nullableAnsweredCredits, nullableString, stringEnum } from '../apiSchemas';
import type { BalanceView } from '../balances/balanceView';

const STATUSES = ['open', 'captured', 'released', 'expired'] as const;

/** A hold as placement, capture and release answer it, with the balance's three figures after the command. */
export const HoldSchema = Type.Object(
  {
    id: Type.String({ description: 'The hold id: the balance id and the Idempotency-Key it was placed with, joined by ":" (each part percent-escapes ":" and "%").' }),
    balanceId: Type.String(),
    status: stringEnum(STATUSES),
    credits: answeredCredits('Credits the hold set aside.'),
    captured: nullableAnsweredCredits('Credits charged by the capture; null unless captured.'),
    released: nullableAnsweredCredits('Credits freed without a charge (all on a release or expiry, the rest on a partial capture); null while open.'),
    expiresAt: nullableString({ description: 'When the hold is freed if not captured or released; stated on placement.' }),
    reference: nullableString(),
    balance: answeredCredits('The settled balance after the command.'),
    held: answeredCredits('Credits held by all open holds after the command.'),
    available: answeredCredits('balance − held after the command.'),
    overdraftLimit: answeredCredits(),
    position: Type.String({ description: 'Global event store position this view reflects.' }),
  },
  { $id: 'Hold' },
);

export type HoldView = Static<typeof HoldSchema>;

type HoldEvent = Extract<BalanceEvent, { type: 'CreditsHeld' | 'HoldCaptured' | 'HoldReleased' | 'HoldExpired' }>;

function isHoldEvent(event: BalanceEvent): event is HoldEvent {
  return event.type === 'CreditsHeld' || event.type === 'HoldCaptured' || event.type === 'HoldReleased' || event.type === 'HoldExpired';
}

/** The hold a command's events (for a replay, the first run's) did something to, with the balance after them. */
export function holdViewOf(holdId: string, events: readonly RecordedBalanceEvent[], balance: BalanceView): HoldView {
  const event = events.map((recorded) => recorded.event).find((candidate): candidate is HoldEvent => isHoldEvent(candidate) && candidate.holdId === holdId);
  // Every hold command that succeeds records its hold event; a miss is a bug, not a request to answer.
  if (event === undefined) throw new Error(`the command on hold ${holdId} recorded no hold event`);
  const figures = {
    balance: balance.balance,
    held: balance.held,
    available: balance.available,
    overdraftLimit: balance.overdraftLimit,
    position: balance.position,
  };
  const base = { id: holdId, balanceId: balance.id, ...figures };
  switch (event.type) {
    case 'CreditsHeld':
      return { ...base, status: 'open', credits: formatCredits(event.credits), captured: null, released: null, expiresAt: event.expiresAt, reference: event.reference };
    case 'HoldCaptured':
      return {
        ...base,
        status: 'captured',
        credits: formatCredits(event.credits + event.released),
        captured: formatCredits(event.credits),
        released: formatCredits(event.released),
        expiresAt: null,
        reference: null,
      };
    case 'HoldReleased':
      return { ...base, status: 'released', credits: formatCredits(event.credits), captured: null, released: formatCredits(event.credits), expiresAt: null, reference: null };
    case 'HoldExpired':
      return { ...base, status: 'expired', credits: formatCredits(event.credits), captured: null, released: formatCredits(event.credits), expiresAt: event.expiresAt, reference: null };
    default: {
      const unhandled: never = event;
      throw new Error(`Unhandled hold event ${JSON.stringify(unhandled)}`);
    }
  }
}
