import { WEBHOOK_EVENT_TYPES, WEBHOOK_PAYLOAD_VERSION } from '@tally/schemas';
import { EXAMPLE_BALANCE_ID, exampleWebhookPayload } from './webhookExamples';
import { webhookEventTypeOf } from './webhookEvents';

const AT = new Date('2026-03-01T12:00:00.000Z');

describe('example webhook messages (an endpoint\'s test)', () => {
  it.each(WEBHOOK_EVENT_TYPES)('%s: a message its own ledger event would raise, on the made-up balance', (type) => {
    const payload = exampleWebhookPayload(type, 'example-1', AT);
    expect(payload.type).toBe(type);
    expect(payload.timestamp).toBe(AT.toISOString());
    // The example's ledger event maps back to the same webhook type through the real mapping.
    expect(webhookEventTypeOf({ type: payload.data.eventType, data: payload.data.event as never })).toBe(type);
    expect(payload.data).toMatchObject({ version: WEBHOOK_PAYLOAD_VERSION, eventId: 'example-1', position: '0' });
    expect(payload.data.balance).toMatchObject({ id: EXAMPLE_BALANCE_ID, customerId: 'example-customer', productId: 'example-product', lowBalanceThreshold: '100' });
    // The balance's figures agree with the event's, where the event states them.
    const event = payload.data.event as Record<string, unknown>;
    const after = event.balanceAfter ?? event.balance;
    expect(payload.data.balance.balance).toBe(after);
    expect(payload.data.balance.available).toBe(payload.data.balance.balance);
    // Amounts are decimal strings, as on every message.
    expect(JSON.stringify(payload)).not.toMatch(/"(balance|held|available|credits)":\s*-?\d/);
  });
});
