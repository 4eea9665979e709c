/**
 * Webhook payloads, version 1: the JSON body Tally POSTs to a webhook endpoint, signed as the
 * Standard Webhooks specification says. The envelope `{ type, timestamp, data }` is the
 * specification's; `data` carries the ledger event that caused the webhook (its id, type,
 * global position and its payload as stored: ledgerEventPayloads, of the version the event was
 * stored with, not the ledger topic's Avro shape) and the balance's three figures just after it. Primitives only: amounts are decimal strings, times ISO-8601.
 */
export const WEBHOOK_PAYLOAD_VERSION = 1;

export const WEBHOOK_EVENT_TYPES = [
  'credit_balance.low',
  'credit_balance.depleted',
  'credit_balance.topped_up',
  'credit_balance.purchased',
  'credit_balance.granted',
  'credit_balance.refunded',
  'hold.expired',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookBalanceV1 {
  id: string;
  customerId: string;
  productId: string;
  name: string;
  /** Credits in the balance (may be negative: usage is never refused). */
  balance: string;
  /** Credits reserved by open holds. */
  held: string;
  /** balance − held: what new holds and deductions may still use. */
  available: string;
  lowBalanceThreshold: string | null;
}

export interface WebhookPayloadV1 {
  type: WebhookEventType;
  /** When the ledger event occurred. */
  timestamp: string;
  data: {
    version: number;
    /** The ledger event's id: the same event reaches an endpoint under one webhook-id however often it is sent. */
    eventId: string;
    /** The ledger event's type, e.g. LowBalanceWarned. */
    eventType: string;
    /** Its position in the global log, a decimal string: orders a balance's webhooks. */
    position: string;
    balance: WebhookBalanceV1;
    /**
     * The ledger event's payload as stored in the event store (ledgerEventPayloads, of the version
     * it was stored with, 1 or 2): flat, not the ledger topic's Avro union branch, with its own
     * `occurredAt` and, on events that change the balance, `balanceAfter` (and `heldAfter` when not
     * zero). Fields added in a later version are absent on events stored before it.
     */
    event: Record<string, unknown>;
  };
}
