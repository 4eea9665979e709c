import { ledgerCsvRow, spreadsheetSafe } from './ledgerCsv';
import type { LedgerEntryView } from './ledgerEntryView';

describe('spreadsheetSafe', () => {
  it.each([
    ['=1+2', "'=1+2"],
    ['+SUM(A1)', "'+SUM(A1)"],
    ['-2+3', "'-2+3"],
    ['@cmd', "'@cmd"],
    ['\tx', "'\tx"],
    ['\rx', "'\rx"],
  ])('puts a quote before %j, which a spreadsheet would run', (value, safe) => {
    expect(spreadsheetSafe(value)).toBe(safe);
  });

  it.each(['-1.75', '-3', '0', 'api_call', 'refund = goodwill', ''])('leaves %j as it is', (value) => {
    expect(spreadsheetSafe(value)).toBe(value);
  });
});

describe('ledgerCsvRow', () => {
  const base: LedgerEntryView = {
    id: 'e1',
    type: 'CreditToppedUp',
    credits: '10',
    balanceAfter: '12',
    heldAfter: '0',
    holdId: null,
    source: 'purchase',
    reason: null,
    usageEventId: null,
    usageEvent: null,
    quantity: null,
    occurredAt: '2026-03-01T12:00:00.000Z',
    recordedAt: '2026-03-01T12:00:00.001Z',
    revision: '3',
    position: '99',
    purchase: { bundleId: 'b10', quantity: 2, unitPrice: '4.50', totalPrice: '9.00', currency: 'EUR' },
    grant: null,
    refund: null,
    refundedBy: null,
    actor: { kind: 'portal' },
  };

  it('spreads a purchase into its columns and leaves the grant columns empty', () => {
    expect(ledgerCsvRow(base)).toMatchObject({
      purchaseBundleId: 'b10',
      purchaseQuantity: 2,
      purchaseUnitPrice: '4.50',
      purchaseTotalPrice: '9.00',
      purchaseCurrency: 'EUR',
      grantSubscriptionId: null,
      grantPlanId: null,
      grantPeriod: null,
      grantPeriodStart: null,
      grantPeriodEnd: null,
    });
  });

  it('spreads a grant into its columns', () => {
    const grant = { subscriptionId: 's1', planId: 'pro', period: 4, periodStart: '2026-03-01T00:00:00.000Z', periodEnd: '2026-04-01T00:00:00.000Z' };
    expect(ledgerCsvRow({ ...base, source: 'grant', purchase: null, grant })).toMatchObject({
      purchaseBundleId: null,
      grantSubscriptionId: 's1',
      grantPlanId: 'pro',
      grantPeriod: 4,
      grantPeriodStart: '2026-03-01T00:00:00.000Z',
      grantPeriodEnd: '2026-04-01T00:00:00.000Z',
    });
  });

  it('names the charge a refund gives back for, and the refund of a refunded charge', () => {
    expect(ledgerCsvRow({ ...base, source: 'refund', purchase: null, refund: { entryId: 'c7' } })).toMatchObject({ refundEntryId: 'c7', refundedBy: null });
    expect(ledgerCsvRow({ ...base, type: 'CreditConsumed', source: 'manual', purchase: null, refundedBy: 'r1' })).toMatchObject({ refundEntryId: null, refundedBy: 'r1' });
  });

  it('spreads the actor: a key by kind, id and name, the portal and an operator by kind, nobody as empty cells', () => {
    const actorColumns = (actor: LedgerEntryView['actor']) => {
      const { actorKind, actorKeyId, actorKeyName } = ledgerCsvRow({ ...base, actor });
      return [actorKind, actorKeyId, actorKeyName];
    };
    expect(actorColumns({ kind: 'key', keyId: '0123456789ab', keyName: 'ops' })).toEqual(['key', '0123456789ab', 'ops']);
    expect(actorColumns({ kind: 'key', keyId: '0123456789ab', keyName: null })).toEqual(['key', '0123456789ab', null]);
    expect(actorColumns({ kind: 'portal' })).toEqual(['portal', null, null]);
    expect(actorColumns({ kind: 'operator' })).toEqual(['operator', null, null]);
    expect(actorColumns(null)).toEqual([null, null, null]);
  });
});
