import { parseCredits, type OpenBalance } from '@tally/domain';
import type { JsonObject } from '@tally/event-store';
import type { CreditBalanceDepletedV1, CreditToppedUpV1, HoldExpiredV1, LowBalanceWarnedV1, WebhookEventType, WebhookPayloadV1 } from '@tally/schemas';
import { webhookPayload } from './webhookEvents';

/** The made-up balance of every example: a receiver that looks it up finds nothing to change. */
export const EXAMPLE_BALANCE_ID = 'example-balance';

/** The made-up ledger event of each webhook type: what raises it, as the ledger would record it. */
function exampleEvent(type: WebhookEventType, occurredAt: string): { readonly type: string; readonly data: JsonObject; readonly balance: string; readonly held: string } {
  switch (type) {
    case 'credit_balance.low': {
      const data: LowBalanceWarnedV1 = { threshold: '100', balance: '80', occurredAt };
      return { type: 'LowBalanceWarned', data: { ...data }, balance: '80', held: '0' };
    }
    case 'credit_balance.depleted': {
      const data: CreditBalanceDepletedV1 = { balance: '0', occurredAt };
      return { type: 'CreditBalanceDepleted', data: { ...data }, balance: '0', held: '0' };
    }
    case 'credit_balance.topped_up': {
      const data: CreditToppedUpV1 = { credits: '500', source: 'manual', reason: 'example top-up', balanceAfter: '580', heldAfter: '0', purchase: null, grant: null, occurredAt };
      return { type: 'CreditToppedUp', data: { ...data, purchase: null, grant: null }, balance: '580', held: '0' };
    }
    case 'credit_balance.purchased': {
      const data: CreditToppedUpV1 = {
        credits: '1000',
        source: 'purchase',
        reason: null,
        balanceAfter: '1080',
        heldAfter: '0',
        purchase: { bundleId: 'example-bundle', quantity: 1, unitPrice: '9.99', totalPrice: '9.99', currency: 'USD' },
        grant: null,
        occurredAt,
      };
      return { type: 'CreditToppedUp', data: { ...data, purchase: { ...data.purchase! }, grant: null }, balance: '1080', held: '0' };
    }
    case 'credit_balance.granted': {
      const data: CreditToppedUpV1 = {
        credits: '750',
        source: 'grant',
        reason: null,
        balanceAfter: '830',
        heldAfter: '0',
        purchase: null,
        grant: { subscriptionId: 'example-subscription', planId: 'example-plan', period: 0, periodStart: occurredAt, periodEnd: occurredAt },
        occurredAt,
      };
      return { type: 'CreditToppedUp', data: { ...data, purchase: null, grant: { ...data.grant! } }, balance: '830', held: '0' };
    }
    case 'credit_balance.refunded': {
      const data: CreditToppedUpV1 = {
        credits: '2.5',
        source: 'refund',
        reason: 'example refund',
        balanceAfter: '82.5',
        heldAfter: '0',
        purchase: null,
        grant: null,
        refund: { entryId: '00000000-0000-5000-8000-000000000000' },
        occurredAt,
      };
      return { type: 'CreditToppedUp', data: { ...data, purchase: null, grant: null, refund: { ...data.refund! } }, balance: '82.5', held: '0' };
    }
    case 'hold.expired': {
      const data: HoldExpiredV1 = { holdId: 'example-hold', credits: '25', expiresAt: occurredAt, balanceAfter: '80', heldAfter: '0', occurredAt };
      return { type: 'HoldExpired', data: { ...data }, balance: '80', held: '0' };
    }
    default: {
      const unknown: never = type;
      throw new Error(`no example of webhook type ${String(unknown)}`);
    }
  }
}

/**
 * An example message of a webhook type, as a delivery of it would carry, on a made-up balance
 * (`example-balance` of `example-customer`): what an endpoint's test sends, so a receiver can be
 * checked end to end before real events reach it. Built by the same mapping as real deliveries.
 */
export function exampleWebhookPayload(type: WebhookEventType, eventId: string, at: Date): WebhookPayloadV1 {
  const occurredAt = at.toISOString();
  const event = exampleEvent(type, occurredAt);
  const balance: OpenBalance = {
    status: 'open',
    balanceId: EXAMPLE_BALANCE_ID,
    customerId: 'example-customer',
    productId: 'example-product',
    name: 'Example credits',
    lowBalanceThreshold: parseCredits('100'),
    balance: parseCredits(event.balance),
    held: parseCredits(event.held),
    holds: {},
    overdraftLimit: 0n,
    warned: type === 'credit_balance.low',
    updatedAt: occurredAt,
  };
  return webhookPayload(type, { id: eventId, type: event.type, position: 0n, data: event.data, recordedAt: at }, balance);
}
