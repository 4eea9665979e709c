import { availableOf, formatCredits, formatNullableCredits, type OpenBalance } from '@tally/domain';
import type { JsonObject } from '@tally/event-store';
import { WEBHOOK_PAYLOAD_VERSION, type WebhookEventType, type WebhookPayloadV1 } from '@tally/schemas';

/** What of a recorded ledger event the mapping reads. */
interface LedgerEventForWebhook {
  readonly id: string;
  readonly type: string;
  readonly position: bigint;
  readonly data: JsonObject;
  readonly recordedAt: Date;
}

/**
 * The webhook event a ledger event raises, if any. A top-up raises the event of its source
 * (a purchase, a subscription's grant, a refund) and `credit_balance.topped_up` otherwise (by hand, or
 * the starting balance). Events of other types, including those a later version of the ledger
 * adds, raise none: a new webhook type is added here on purpose, never by accident.
 */
export function webhookEventTypeOf(event: Pick<LedgerEventForWebhook, 'type' | 'data'>): WebhookEventType | undefined {
  switch (event.type) {
    case 'LowBalanceWarned':
      return 'credit_balance.low';
    case 'CreditBalanceDepleted':
      return 'credit_balance.depleted';
    case 'CreditToppedUp':
      if (event.data.source === 'purchase') return 'credit_balance.purchased';
      if (event.data.source === 'grant') return 'credit_balance.granted';
      if (event.data.source === 'refund') return 'credit_balance.refunded';
      return 'credit_balance.topped_up';
    case 'HoldExpired':
      return 'hold.expired';
    default:
      return undefined;
  }
}

/**
 * The body sent for a ledger event, given the balance as folded just after it. Built once,
 * when the delivery is recorded, and sent byte for byte on every attempt: the signature covers
 * the exact bytes, and a retry must carry what the first attempt carried.
 */
export function webhookPayload(type: WebhookEventType, event: LedgerEventForWebhook, balance: OpenBalance): WebhookPayloadV1 {
  const occurredAt = typeof event.data.occurredAt === 'string' ? event.data.occurredAt : event.recordedAt.toISOString();
  return {
    type,
    timestamp: occurredAt,
    data: {
      version: WEBHOOK_PAYLOAD_VERSION,
      eventId: event.id,
      eventType: event.type,
      position: event.position.toString(),
      balance: {
        id: balance.balanceId,
        customerId: balance.customerId,
        productId: balance.productId,
        name: balance.name,
        // The three figures as the fold keeps them; available through the domain's one definition.
        balance: formatCredits(balance.balance),
        held: formatCredits(balance.held),
        available: formatCredits(availableOf(balance)),
        lowBalanceThreshold: formatNullableCredits(balance.lowBalanceThreshold),
      },
      // The payload as stored (its version's shape), not the ledger topic's Avro union branch.
      event: event.data,
    },
  };
}
