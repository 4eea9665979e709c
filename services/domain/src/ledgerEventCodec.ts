import type { LedgerEventPayloadV1 } from '@tally/schemas';
import { BalanceEvent } from './balance';
import { formatCredits, parseStoredCredits } from './credits';

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
          lowBalanceThreshold: event.lowBalanceThreshold === null ? null : formatCredits(event.lowBalanceThreshold),
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
          purchase: event.purchase === null ? null : { ...event.purchase },
          grant: event.grant === null ? null : { ...event.grant },
          occurredAt: event.occurredAt,
        },
      };
    case 'CreditConsumed':
      return {
        type: event.type,
        data: {
          credits: formatCredits(event.credits),
          source: event.source,
          reason: event.reason,
          usage: event.usage === null ? null : { ...event.usage },
          balanceAfter: formatCredits(event.balanceAfter),
          occurredAt: event.occurredAt,
        },
      };
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
          lowBalanceThreshold: event.lowBalanceThreshold === null ? null : formatCredits(event.lowBalanceThreshold),
          occurredAt: event.occurredAt,
        },
      };
    default: {
      const unhandled: never = event;
      throw new Error(`Unhandled ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}

const credits = (text: string) => parseStoredCredits(text);
const optionalCredits = (text: string | null) => (text === null ? null : credits(text));

export function fromLedgerPayload(payload: LedgerEventPayloadV1): BalanceEvent {
  switch (payload.type) {
    case 'CreditBalanceOpened':
      return { type: payload.type, ...payload.data, lowBalanceThreshold: optionalCredits(payload.data.lowBalanceThreshold) };
    case 'CreditToppedUp':
      return {
        type: payload.type,
        ...payload.data,
        credits: credits(payload.data.credits),
        balanceAfter: credits(payload.data.balanceAfter),
        purchase: payload.data.purchase ?? null,
        grant: payload.data.grant ?? null,
      };
    case 'CreditConsumed':
      return {
        type: payload.type,
        ...payload.data,
        credits: credits(payload.data.credits),
        balanceAfter: credits(payload.data.balanceAfter),
        usage: payload.data.usage ?? null,
      };
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
        occurredAt: payload.data.occurredAt,
      };
    default: {
      const unhandled: never = payload;
      throw new Error(`Unknown ledger event ${JSON.stringify(unhandled)}`);
    }
  }
}
