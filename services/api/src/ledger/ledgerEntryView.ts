import { Type, type Static } from '@sinclair/typebox';
import { formatCredits, type GrantDetails, type PurchaseDetails, type RefundDetails } from '@tally/domain';
import { LEDGER_EVENT_TYPES } from '@tally/schemas';
import type { LedgerActor, RecordedBalanceEvent } from '@tally/ledger';
import { currency, nullableAnsweredCredits, nullableString, priceAmount, stringEnum, TOTAL_PRICE_PATTERN } from '../apiSchemas';

const SOURCES = ['starting', 'manual', 'purchase', 'grant', 'refund', 'usage', 'hold', null] as const;

/**
 * Who asked for an entry's change, as its reader may see it: a key by id and name to those who
 * hold keys; to a customer on the portal, only that the provider (`operator`) or they themselves
 * (`portal`) did, since key names are the provider's own.
 */
export type LedgerActorView = LedgerActor | { readonly kind: 'operator' };

/** Who reads the entries: a key holder sees which key made a change, a portal customer does not. */
export type LedgerAudience = 'keyHolder' | 'customer';

/** One ledger line as the API answers it: every event type, null where a field does not apply. */
export const LedgerEntrySchema = Type.Object(
  {
    id: Type.String({ description: 'Event id.' }),
    type: stringEnum(LEDGER_EVENT_TYPES),
    credits: nullableAnsweredCredits(
      'Credits added (top-ups), taken (consumption), held (CreditsHeld), charged (HoldCaptured) or freed (HoldReleased, HoldExpired); null for other events.',
    ),
    balanceAfter: nullableAnsweredCredits('The balance after the event; null where the event does not change or state it.'),
    heldAfter: nullableAnsweredCredits('Credits held by open holds after the event; null where the event does not state it.'),
    holdId: nullableString({ description: 'The hold a hold event is about.' }),
    source: Type.Unsafe<(typeof SOURCES)[number]>({ type: ['string', 'null'], enum: SOURCES }),
    reason: nullableString(),
    usageEventId: nullableString(),
    usageEvent: nullableString({ description: 'The usage event name, e.g. api_call.' }),
    quantity: nullableString(),
    occurredAt: Type.String({ format: 'date-time' }),
    recordedAt: Type.String({ format: 'date-time' }),
    revision: Type.String({ description: 'Position within the balance stream; the pagination cursor.' }),
    position: Type.String(),
    purchase: Type.Unsafe<PurchaseDetails | null>({
      type: ['object', 'null'],
      properties: {
        bundleId: Type.String(),
        quantity: Type.Integer(),
        unitPrice: priceAmount,
        totalPrice: Type.String({ pattern: TOTAL_PRICE_PATTERN }),
        currency,
      },
    }),
    actor: Type.Unsafe<LedgerActorView | null>({
      type: ['object', 'null'],
      description:
        'Who asked for the change over the API: `key` (an API key or a console session, with the key\'s id, the first 12 hex digits of its SHA-256, and its configured name), `portal` (the customer on the portal), or to a portal reader `operator` for a key; null for what Tally did on its own (usage, grants, hold expiries) and for entries recorded before actors were.',
      properties: {
        kind: Type.String({ enum: ['key', 'portal', 'operator'] }),
        keyId: Type.String(),
        keyName: nullableString(),
      },
      required: ['kind'],
    }),
    grant: Type.Unsafe<GrantDetails | null>({
      type: ['object', 'null'],
      properties: {
        subscriptionId: Type.String(),
        planId: Type.String(),
        period: Type.Integer(),
        periodStart: Type.String(),
        periodEnd: Type.String(),
      },
    }),
    refund: Type.Unsafe<RefundDetails | null>({
      type: ['object', 'null'],
      description: 'On a refund (a CreditToppedUp with source refund): the id of the entry it refunds, a CreditConsumed of the same balance.',
      properties: { entryId: Type.String() },
      required: ['entryId'],
    }),
    refundedBy: nullableString({ description: 'On a charge (a CreditConsumed) that was refunded: the id of the refund. Read with the ledger; null in answers to writes.' }),
  },
  { $id: 'LedgerEntry' },
);

export type LedgerEntryView = Static<typeof LedgerEntrySchema>;

type EntryDetails = Omit<LedgerEntryView, 'id' | 'type' | 'occurredAt' | 'recordedAt' | 'revision' | 'position' | 'actor' | 'refundedBy'>;

const NO_DETAILS: EntryDetails = {
  credits: null,
  balanceAfter: null,
  heldAfter: null,
  holdId: null,
  source: null,
  reason: null,
  usageEventId: null,
  usageEvent: null,
  quantity: null,
  purchase: null,
  grant: null,
  refund: null,
};

function amountDetails(event: { credits: bigint; balanceAfter: bigint; heldAfter: bigint }): Partial<EntryDetails> {
  return { credits: formatCredits(event.credits), balanceAfter: formatCredits(event.balanceAfter), heldAfter: formatCredits(event.heldAfter) };
}

function detailsOf(event: RecordedBalanceEvent['event']): EntryDetails {
  switch (event.type) {
    case 'CreditToppedUp':
      return { ...NO_DETAILS, ...amountDetails(event), source: event.source, reason: event.reason, purchase: event.purchase, grant: event.grant, refund: event.refund };
    case 'CreditConsumed':
      return {
        ...NO_DETAILS,
        ...amountDetails(event),
        source: event.source,
        reason: event.reason,
        usageEventId: event.usage?.eventId ?? null,
        usageEvent: event.usage?.event ?? null,
        quantity: event.usage?.quantity ?? null,
      };
    // Warnings record the balance at the change that caused them: the balance after it.
    case 'LowBalanceWarned':
    case 'CreditBalanceDepleted':
      return { ...NO_DETAILS, balanceAfter: formatCredits(event.balance) };
    case 'CreditBalanceOpened':
    case 'CreditBalanceSettingsChanged':
      return NO_DETAILS;
    case 'CreditsHeld':
    case 'HoldCaptured':
    case 'HoldExpired':
      return { ...NO_DETAILS, ...amountDetails(event), holdId: event.holdId };
    case 'HoldReleased':
      return { ...NO_DETAILS, ...amountDetails(event), holdId: event.holdId, reason: event.reason, usageEventId: event.usageEventId };
    default: {
      const unhandled: never = event;
      throw new Error(`Unhandled ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}

function actorView(actor: LedgerActor | undefined, audience: LedgerAudience): LedgerActorView | null {
  if (actor === undefined) return null;
  return audience === 'customer' && actor.kind === 'key' ? { kind: 'operator' } : actor;
}

/** `refunds`: the page's refunded charges (LedgerPage.refunds); absent for an entry a write just made. */
export function ledgerEntryView(recorded: RecordedBalanceEvent, audience: LedgerAudience = 'keyHolder', refunds?: ReadonlyMap<string, string>): LedgerEntryView {
  return {
    id: recorded.eventId,
    type: recorded.event.type,
    ...detailsOf(recorded.event),
    refundedBy: refunds?.get(recorded.eventId) ?? null,
    actor: actorView(recorded.metadata.actor, audience),
    occurredAt: recorded.event.occurredAt,
    recordedAt: recorded.recordedAt.toISOString(),
    revision: recorded.revision.toString(),
    position: recorded.position.toString(),
  };
}
