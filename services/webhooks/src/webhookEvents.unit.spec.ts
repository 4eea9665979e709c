import { MICROS_PER_CREDIT, type OpenBalance } from '@tally/domain';
import { WEBHOOK_EVENT_TYPES } from '@tally/schemas';
import { webhookEventTypeOf, webhookPayload } from './webhookEvents';
import { webhookMessageId } from './webhookMessageId';

const balance: OpenBalance = {
  status: 'open',
  balanceId: 'b-1',
  customerId: 'c-1',
  productId: 'p-1',
  name: 'API credits',
  lowBalanceThreshold: 10n * MICROS_PER_CREDIT,
  balance: 7_500_000n,
  held: 2_000_000n,
  holds: {},
  overdraftLimit: 0n,
  warned: true,
  updatedAt: '2026-11-30T12:00:00.000Z',
};

describe('webhookEventTypeOf', () => {
  it.each([
    ['LowBalanceWarned', {}, 'credit_balance.low'],
    ['CreditBalanceDepleted', {}, 'credit_balance.depleted'],
    ['CreditToppedUp', { source: 'manual' }, 'credit_balance.topped_up'],
    ['CreditToppedUp', { source: 'starting' }, 'credit_balance.topped_up'],
    ['CreditToppedUp', { source: 'purchase' }, 'credit_balance.purchased'],
    ['CreditToppedUp', { source: 'grant' }, 'credit_balance.granted'],
    ['CreditToppedUp', { source: 'refund' }, 'credit_balance.refunded'],
    ['HoldExpired', {}, 'hold.expired'],
  ])('maps %s %j to %s', (type, data, expected) => {
    expect(webhookEventTypeOf({ type, data })).toBe(expected);
  });

  it.each(['CreditConsumed', 'CreditBalanceOpened', 'CreditBalanceSettingsChanged', 'SomethingNew'])('raises nothing for %s', (type) => {
    expect(webhookEventTypeOf({ type, data: {} })).toBeUndefined();
  });

  it('raises every declared webhook type from some ledger event', () => {
    const raised = new Set(
      [
        ['LowBalanceWarned', {}],
        ['CreditBalanceDepleted', {}],
        ['CreditToppedUp', { source: 'manual' }],
        ['CreditToppedUp', { source: 'purchase' }],
        ['CreditToppedUp', { source: 'grant' }],
        ['CreditToppedUp', { source: 'refund' }],
        ['HoldExpired', {}],
      ].map(([type, data]) => webhookEventTypeOf({ type: type as string, data: data as Record<string, string> })),
    );
    expect([...raised].sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
  });
});

describe('webhookPayload', () => {
  it('carries the ledger event id, its payload and the balance with its three figures as decimal strings', () => {
    const data = { threshold: '10', balance: '7.5', occurredAt: '2026-11-30T12:00:00.000Z' };
    const payload = webhookPayload(
      'credit_balance.low',
      { id: 'e-1', type: 'LowBalanceWarned', position: 42n, data, recordedAt: new Date('2026-11-30T12:00:01Z') },
      balance,
    );
    expect(payload).toEqual({
      type: 'credit_balance.low',
      timestamp: '2026-11-30T12:00:00.000Z',
      data: {
        version: 1,
        eventId: 'e-1',
        eventType: 'LowBalanceWarned',
        position: '42',
        balance: {
          id: 'b-1',
          customerId: 'c-1',
          productId: 'p-1',
          name: 'API credits',
          balance: '7.5',
          held: '2',
          available: '5.5',
          lowBalanceThreshold: '10',
        },
        event: data,
      },
    });
  });
});

describe('webhookMessageId', () => {
  it('is the same for the same endpoint and ledger event, and differs otherwise', () => {
    expect(webhookMessageId('ep-1', 'e-1')).toBe(webhookMessageId('ep-1', 'e-1'));
    expect(webhookMessageId('ep-1', 'e-1')).not.toBe(webhookMessageId('ep-2', 'e-1'));
    expect(webhookMessageId('ep-1', 'e-1')).not.toBe(webhookMessageId('ep-1', 'e-2'));
    // Parts are joined unambiguously: shifting a ':' between them gives another id.
    expect(webhookMessageId('a:b', 'c')).not.toBe(webhookMessageId('a', 'b:c'));
    expect(webhookMessageId('ep-1', 'e-1')).toMatch(/^msg_[0-9a-f-]{36}$/);
  });
});
