import { Type, type Static } from '@sinclair/typebox';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType, type WebhookPayloadV1 } from '@tally/schemas';
import { answeredCredits, nullableAnsweredCredits, stringEnum } from '../apiSchemas';

/** The body of every webhook (schemas' WebhookPayloadV1), as JSON Schema for the OpenAPI document. */
const WebhookPayloadSchema = Type.Object({
  type: stringEnum(WEBHOOK_EVENT_TYPES),
  timestamp: Type.String({ format: 'date-time', description: 'When the ledger event occurred.' }),
  data: Type.Object({
    version: Type.Integer({ description: "The webhook payload's version (this envelope): 1. Not the version of `event`, which is the ledger event's as stored." }),
    eventId: Type.String({ description: 'The ledger event id. The webhook-id header is derived from it and the endpoint, and stays the same on every attempt.' }),
    eventType: Type.String({ description: 'The ledger event type, e.g. LowBalanceWarned.' }),
    position: Type.String({ description: "The event's position in the global log; orders a balance's webhooks." }),
    balance: Type.Object({
      id: Type.String(),
      customerId: Type.String(),
      productId: Type.String(),
      name: Type.String(),
      balance: answeredCredits('Credits, a decimal string; may be negative.'),
      held: answeredCredits('Credits reserved by open holds.'),
      available: answeredCredits('balance − held.'),
      lowBalanceThreshold: nullableAnsweredCredits(),
    }, { description: 'The balance just after the event.' }),
    event: Type.Record(Type.String(), Type.Unknown(), {
      description:
        "The ledger event's payload as Tally stores it (schemas/src/ledgerEventPayloads.ts, of the version the event was stored with; version 2 now): " +
        'a flat object of decimal strings and ISO-8601 times with its own `occurredAt`, and on events that change the balance `balanceAfter` ' +
        '(and `heldAfter` unless zero); fields added in a later version are absent on events stored before it. ' +
        "Not the ledger topic's Avro payload (docs/ledger.md), which wraps it in its union branch (`io.tally.ledger.<type>`) and keeps times and figures in the envelope.",
    }),
  }),
});

// The document's schema and the payload type the deliverer sends must not drift apart.
const agrees: Static<typeof WebhookPayloadSchema> extends WebhookPayloadV1 ? (WebhookPayloadV1 extends Static<typeof WebhookPayloadSchema> ? true : never) : never = true;
void agrees;

const WHAT: Readonly<Record<WebhookEventType, string>> = {
  'credit_balance.low': 'The balance fell below its low-balance threshold (a LowBalanceWarned): once per crossing.',
  'credit_balance.depleted': 'The balance went from above zero to zero or below (a CreditBalanceDepleted).',
  'credit_balance.topped_up': 'Credits added by hand or as the starting balance (a CreditToppedUp with source manual or starting).',
  'credit_balance.purchased': 'A bundle bought (a CreditToppedUp with source purchase; the event carries the bundle, quantity and price).',
  'credit_balance.granted': "A subscription's grant for a period (a CreditToppedUp with source grant).",
  'credit_balance.refunded': 'Credits given back for a charge (a CreditToppedUp with source refund; the event names the refunded ledger entry under refund.entryId).',
  'hold.expired': 'A hold ran out before it was captured or released (a HoldExpired): its credits are available again.',
};

/** `credit_balance.topped_up` → `creditBalanceToppedUpWebhook`: unique, as every route's is, for generated clients. */
function webhookOperationId(type: WebhookEventType): string {
  return `${type.replace(/[._]([a-z])/g, (_, letter: string) => letter.toUpperCase())}Webhook`;
}

const header = (name: string, description: string) => ({ name, in: 'header', required: true, schema: { type: 'string' }, description });

/**
 * OpenAPI 3.1's `webhooks`: what Tally POSTs to an endpoint, per event type, with the signature
 * headers of the Standard Webhooks specification. Shown at /docs beside the routes.
 */
export function webhookDocument(): Record<string, unknown> {
  return Object.fromEntries(
    WEBHOOK_EVENT_TYPES.map((type) => [
      type,
      {
        post: {
          // Its own tag: client generators make a class per tag, and `webhooks` names the endpoints' routes.
          tags: ['webhook events'],
          operationId: webhookOperationId(type),
          summary: type,
          description: `${WHAT[type]} Delivered at least once, in ledger order per balance, until a 2xx answers; verify the signature with any Standard Webhooks library and deduplicate by webhook-id.`,
          parameters: [
            header('webhook-id', 'The message id, the same on every attempt: deduplicate by it.'),
            header('webhook-timestamp', 'Seconds since the epoch when this attempt was signed; refuse one far from your clock.'),
            header('webhook-signature', '`v1,<base64 HMAC-SHA256 of id.timestamp.body>`; two, space-separated, during a secret rotation.'),
          ],
          requestBody: { required: true, content: { 'application/json': { schema: { ...WebhookPayloadSchema, properties: { ...WebhookPayloadSchema.properties, type: { type: 'string', enum: [type] } } } } } },
          responses: { '2XX': { description: 'Received. Any other answer, or none within the response timeout, is retried with backoff.' } },
        },
      },
    ]),
  );
}
