import type { LedgerEventPayloadV1 } from '@tally/schemas';
import { BalanceEvent } from './balance';
import { formatCredits, formatNullableCredits, parseStoredCredits } from './credits';

/**
 * Maps domain events (bigint micro-credits) to their versioned wire payloads (decimal
 * strings) and back. The only place that knows both shapes, so a payload never embeds a
 * domain type and a new payload version needs a change here and nowhere else.
 */
export function toLedgerPayload(event: BalanceEvent): LedgerEventPayloadV1 {
  switch (event.type) {
    case 'CreditBalanceOpened':
      return {
        type: event.type,
        data: {
          balanceId: event.balanceId,
          customerId: event.customerId,
          productId: event.productId,
          name: event.name,
          lowBalanceThreshold: formatNullableCredits(event.lowBalanceThreshold),
          ...unlessZero('overdraftLimit', event.overdraftLimit),
          occurredAt: event.occurredAt,
        },
      };
    case 'CreditToppedUp':
      return {
        type: event.type,
        data: {
          credits: formatCredits(event.credits),
          source: event.source,
          reason: event.reason,
          balanceAfter: formatCredits(event.balanceAfter),
          ...unlessZero('heldAfter', event.heldAfter),
          purchase: event.purchase === null ? null : { ...event.purchase },
          grant: event.grant === null ? null : { ...event.grant },
          // Only where set: the top-ups stored before refunds keep their shape, and the others
          // store no more than before.
          ...(event.refund === null ? {} : { refund: { ...event.refund } }),
          occurredAt: event.occurredAt,
        },
      };
    case 'CreditConsumed': {
      // Two literals rather than a spread of unlessZero: one per usage charge the consumer
      // writes. The keys are in the same order either way (the stored shape depends on it).
      const credits = formatCredits(event.credits);
      const usage = event.usage === null ? null : { ...event.usage };
      const balanceAfter = formatCredits(event.balanceAfter);
      const { source, reason, occurredAt } = event;
      return {
        type: event.type,
        data:
          event.heldAfter === 0n
            ? { credits, source, reason, usage, balanceAfter, occurredAt }
            : { credits, source, reason, usage, balanceAfter, heldAfter: formatCredits(event.heldAfter), occurredAt },
      };
    }
    case 'LowBalanceWarned':
      return {
        type: event.type,
        data: {
          threshold: formatCredits(event.threshold),
          balance: formatCredits(event.balance),
          occurredAt: event.occurredAt,
        },
      };
    case 'CreditBalanceDepleted':
      return { type: event.type, data: { balance: formatCredits(event.balance), occurredAt: event.occurredAt } };
    case 'CreditBalanceSettingsChanged':
      return {
        type: event.type,
        data: {
          name: event.name,
          lowBalanceThreshold: formatNullableCredits(event.lowBalanceThreshold),
          ...unlessZero('overdraftLimit', event.overdraftLimit),
          occurredAt: event.occurredAt,
        },
      };
    case 'CreditsHeld':
      return {
        type: event.type,
        data: {
          holdId: event.holdId,
          credits: formatCredits(event.credits),
          expiresAt: event.expiresAt,
          reference: event.reference,
          ...figures(event),
          occurredAt: event.occurredAt,
        },
      };
    case 'HoldCaptured':
      return {
        type: event.type,
        data: {
          holdId: event.holdId,
          credits: formatCredits(event.credits),
          released: formatCredits(event.released),
          ...figures(event),
          occurredAt: event.occurredAt,
        },
      };
    case 'HoldReleased':
      return {
        type: event.type,
        data: {
          holdId: event.holdId,
          credits: formatCredits(event.credits),
          reason: event.reason,
          usageEventId: event.usageEventId,
          ...figures(event),
          occurredAt: event.occurredAt,
        },
      };
    case 'HoldExpired':
      return {
        type: event.type,
        data: {
          holdId: event.holdId,
          credits: formatCredits(event.credits),
          expiresAt: event.expiresAt,
          ...figures(event),
          occurredAt: event.occurredAt,
        },
      };
    default: {
      const unhandled: never = event;
      throw new Error(`Unhandled ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}

/**
 * Fields added with holds are left out while zero: events of balances without holds or overdraft
 * are stored exactly as before, and an absent field reads back as the zero it stood for.
 */
function unlessZero<K extends string>(field: K, micros: bigint): { [P in K]?: string } {
  return (micros === 0n ? {} : { [field]: formatCredits(micros) }) as { [P in K]?: string };
}

function figures(event: { balanceAfter: bigint; heldAfter: bigint }): { balanceAfter: string; heldAfter: string } {
  return { balanceAfter: formatCredits(event.balanceAfter), heldAfter: formatCredits(event.heldAfter) };
}

const credits = (text: string) => parseStoredCredits(text);
const optionalCredits = (text: string | null) => (text === null ? null : credits(text));
const zeroUnless = (text: string | undefined) => (text === undefined ? 0n : credits(text));

/**
 * The domain's event from a stored ledger event's type and data (payload v1, as toLedgerPayload
 * wrote them; the codec rejects an unknown type): the one decoding of stored ledger events, for
 * the ledger's folds and the projections. A stored event is passed as it is; only its `type` and
 * `data` are taken (an unknown type's error names those, not the store's bigints).
 */
export function fromStoredLedgerEvent(stored: { readonly type: string; readonly data: object }): BalanceEvent {
  return fromLedgerPayload({ type: stored.type, data: stored.data } as unknown as LedgerEventPayloadV1);
}

export function fromLedgerPayload(payload: LedgerEventPayloadV1): BalanceEvent {
  switch (payload.type) {
    // Field by field, as every case below, not `{ type, ...data, credits: … }`: V8 (Node 20) copies
    // a spread with overrides on its slow path, about 1 µs an event, and every cold balance the
    // metering consumer charges is folded through here (docs/benchmarks.md, 2026-12-03 midday).
    // A field the payload version does not name is not carried into the domain's event.
    case 'CreditBalanceOpened': {
      const { data } = payload;
      return {
        type: payload.type,
        balanceId: data.balanceId,
        customerId: data.customerId,
        productId: data.productId,
        name: data.name,
        lowBalanceThreshold: optionalCredits(data.lowBalanceThreshold),
        overdraftLimit: zeroUnless(data.overdraftLimit),
        occurredAt: data.occurredAt,
      };
    }
    case 'CreditToppedUp': {
      const { data } = payload;
      return {
        type: payload.type,
        credits: credits(data.credits),
        source: data.source,
        reason: data.reason,
        balanceAfter: credits(data.balanceAfter),
        heldAfter: zeroUnless(data.heldAfter),
        purchase: data.purchase ?? null,
        grant: data.grant ?? null,
        refund: data.refund ?? null,
        occurredAt: data.occurredAt,
      };
    }
    case 'CreditConsumed': {
      const { data } = payload;
      return {
        type: payload.type,
        credits: credits(data.credits),
        source: data.source,
        reason: data.reason,
        usage: data.usage ?? null,
        balanceAfter: credits(data.balanceAfter),
        heldAfter: zeroUnless(data.heldAfter),
        occurredAt: data.occurredAt,
      };
    }
    case 'LowBalanceWarned':
      return {
        type: payload.type,
        threshold: credits(payload.data.threshold),
        balance: credits(payload.data.balance),
        occurredAt: payload.data.occurredAt,
      };
    case 'CreditBalanceDepleted':
      return { type: payload.type, balance: credits(payload.data.balance), occurredAt: payload.data.occurredAt };
    case 'CreditBalanceSettingsChanged':
      return {
        type: payload.type,
        name: payload.data.name,
        lowBalanceThreshold: optionalCredits(payload.data.lowBalanceThreshold),
        overdraftLimit: zeroUnless(payload.data.overdraftLimit),
        occurredAt: payload.data.occurredAt,
      };
    case 'CreditsHeld':
      return {
        type: payload.type,
        holdId: payload.data.holdId,
        credits: credits(payload.data.credits),
        expiresAt: payload.data.expiresAt,
        reference: payload.data.reference ?? null,
        balanceAfter: credits(payload.data.balanceAfter),
        heldAfter: credits(payload.data.heldAfter),
        occurredAt: payload.data.occurredAt,
      };
    case 'HoldCaptured':
      return {
        type: payload.type,
        holdId: payload.data.holdId,
        credits: credits(payload.data.credits),
        released: credits(payload.data.released),
        balanceAfter: credits(payload.data.balanceAfter),
        heldAfter: credits(payload.data.heldAfter),
        occurredAt: payload.data.occurredAt,
      };
    case 'HoldReleased':
      return {
        type: payload.type,
        holdId: payload.data.holdId,
        credits: credits(payload.data.credits),
        reason: payload.data.reason ?? null,
        usageEventId: payload.data.usageEventId ?? null,
        balanceAfter: credits(payload.data.balanceAfter),
        heldAfter: credits(payload.data.heldAfter),
        occurredAt: payload.data.occurredAt,
      };
    case 'HoldExpired':
      return {
        type: payload.type,
        holdId: payload.data.holdId,
        credits: credits(payload.data.credits),
        expiresAt: payload.data.expiresAt,
        balanceAfter: credits(payload.data.balanceAfter),
        heldAfter: credits(payload.data.heldAfter),
        occurredAt: payload.data.occurredAt,
      };
    default: {
      const unhandled: never = payload;
      throw new Error(`Unknown ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}
