import { invoiceToBeOf } from './exampleBillingConsumer';
import type { LedgerEventPayloadRecord, LedgerEventRecord } from './ledgerEventRecord';

const OCCURRED_AT = Date.parse('2026-03-02T09:15:30.000Z');

function decoded(payload: LedgerEventPayloadRecord): LedgerEventRecord {
  const [name] = Object.keys(payload);
  return {
    eventId: '9a0d2c6b-4f7e-5b13-9e2a-6c8d1f0b3a77',
    type: name!.slice('io.tally.ledger.'.length) as LedgerEventRecord['type'],
    balanceId: 'bal-1',
    customerId: 'cus_4711',
    productId: 'api-credits',
    streamRevision: 2,
    globalPosition: 1388,
    occurredAt: OCCURRED_AT,
    recordedAt: OCCURRED_AT + 18,
    payload,
    balance: null,
    held: null,
    available: null,
    actor: null,
  };
}

const purchase = { bundleId: 'bundle-100', quantity: 2, unitPrice: '9.99', totalPrice: '19.98', currency: 'EUR' };
const grant = { subscriptionId: 'sub-1', planId: 'pro', period: 1, periodStart: '2026-03-03T00:00:00.000Z', periodEnd: '2026-04-03T00:00:00.000Z' };
const toppedUp = { credits: '200', reason: null, balanceAfter: '220', purchase: null, grant: null };

describe('invoiceToBeOf', () => {
  it('makes an invoice line of a purchase, with the event id as its idempotency key', () => {
    const event = decoded({ 'io.tally.ledger.CreditToppedUp': { ...toppedUp, source: 'purchase', purchase } });
    expect(invoiceToBeOf(event)).toEqual({
      eventId: '9a0d2c6b-4f7e-5b13-9e2a-6c8d1f0b3a77',
      customerId: 'cus_4711',
      balanceId: 'bal-1',
      productId: 'api-credits',
      ...purchase,
      credits: '200',
      purchasedAt: new Date(OCCURRED_AT),
    });
  });

  it('ignores every other event: grants, refunds, manual and starting top-ups, consumption', () => {
    const others = [
      decoded({ 'io.tally.ledger.CreditToppedUp': { ...toppedUp, source: 'grant', grant } }),
      // Credits given back for a charge: not money, so no invoice line.
      decoded({ 'io.tally.ledger.CreditToppedUp': { ...toppedUp, source: 'refund', refund: { entryId: '0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0' } } }),
      decoded({ 'io.tally.ledger.CreditToppedUp': { ...toppedUp, source: 'manual', reason: 'goodwill' } }),
      decoded({ 'io.tally.ledger.CreditToppedUp': { ...toppedUp, source: 'starting' } }),
      decoded({
        'io.tally.ledger.CreditConsumed': { credits: '1', source: 'manual', reason: null, usage: null, balanceAfter: '219' },
      }),
      decoded({ 'io.tally.ledger.CreditBalanceOpened': { name: 'API credits', lowBalanceThreshold: null, overdraftLimit: '0' } }),
    ];
    expect(others.map(invoiceToBeOf)).toEqual(others.map(() => undefined));
  });
});
