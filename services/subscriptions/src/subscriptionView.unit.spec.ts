import { parseCredits } from '@tally/domain';
import { planFromDto } from './plan';
import { cancellationInstant, nextOverrideVersions, type Subscription } from './subscription';
import { subscriptionView } from './subscriptionView';

const plan = planFromDto({
  id: 'pro',
  name: 'Pro',
  items: [{ productId: 'api', creditsPerPeriod: '100', period: 'month' }],
});

const subscription: Subscription = {
  id: 'sub-1',
  customerId: 'c-1',
  planId: 'pro',
  startsAt: new Date('2024-01-31T00:00:00.000Z'),
  canceledAt: null,
  createdAt: new Date('2024-01-30T00:00:00.000Z'),
  createdBy: { keyId: '0123456789ab', keyName: 'billing-ops' },
  canceledBy: null,
  overrides: [
    { productId: 'api', effectiveFromPeriod: 2, creditsPerPeriod: parseCredits('400'), lowBalanceThreshold: null, changedBy: { keyId: 'ba9876543210', keyName: null } },
  ],
  grantedThrough: new Map([['api', 1]]),
  reservedThrough: new Map([['api', 1]]),
  version: 1,
};

describe('subscriptionView', () => {
  it("shows each item's current period and the terms in force in it", () => {
    const view = subscriptionView({ subscription, plan, asOf: new Date('2024-03-31T00:00:00.000Z') });
    expect(view.status).toBe('active');
    expect(view.items).toEqual([
      {
        productId: 'api',
        period: 'month',
        currentPeriod: { index: 2, start: '2024-03-31T00:00:00.000Z', end: '2024-04-30T00:00:00.000Z' },
        creditsPerPeriod: '400',
        lowBalanceThreshold: null,
        grantedThrough: 1,
        reservedThrough: 1,
        finalPeriod: null,
        finalPeriodEnd: null,
        next: { index: 3, start: '2024-04-30T00:00:00.000Z', creditsPerPeriod: '400', lowBalanceThreshold: null, reserved: false },
      },
    ]);
    expect(view.overrides).toEqual([
      { productId: 'api', effectiveFromPeriod: 2, creditsPerPeriod: '400', lowBalanceThreshold: null, changedBy: { keyId: 'ba9876543210', keyName: null } },
    ]);
    expect(view).toMatchObject({ createdBy: { keyId: '0123456789ab', keyName: 'billing-ops' }, canceledBy: null });
  });

  it("shows the next period's terms: a change from the next period shows there, not in the current one", () => {
    const [item] = subscriptionView({ subscription, plan, asOf: new Date('2024-02-29T12:00:00.000Z') }).items;
    expect(item).toMatchObject({
      currentPeriod: { index: 1 },
      creditsPerPeriod: '100',
      next: { index: 2, start: '2024-03-31T00:00:00.000Z', creditsPerPeriod: '400', lowBalanceThreshold: null },
    });
  });

  it('before the start the next period is period 0; once canceled there is none after the final one', () => {
    const notStarted = { ...subscription, grantedThrough: new Map(), reservedThrough: new Map() };
    const [before] = subscriptionView({ subscription: notStarted, plan, asOf: new Date('2024-01-01T00:00:00.000Z') }).items;
    expect(before?.next).toEqual({ index: 0, start: '2024-01-31T00:00:00.000Z', creditsPerPeriod: '100', lowBalanceThreshold: null, reserved: false });
    const canceled = { ...subscription, canceledAt: new Date('2024-02-01T00:00:00.000Z') };
    const [after] = subscriptionView({ subscription: canceled, plan, asOf: new Date('2024-02-02T00:00:00.000Z') }).items;
    expect(after?.next).toBeNull();
  });

  describe('a period a grant has reserved ahead of this clock (a scheduler whose clock runs ahead)', () => {
    // By this clock period 1 is in progress; a grant has reserved period 2, not yet granted.
    const asOf = new Date('2024-03-10T00:00:00.000Z');
    const ahead = { ...subscription, grantedThrough: new Map([['api', 1]]), reservedThrough: new Map([['api', 2]]) };

    it('shows it, and says the next period is reserved: a change of terms applies from the one after and does not show in next', () => {
      const versions = nextOverrideVersions(ahead, plan, [{ productId: 'api', creditsPerPeriod: parseCredits('700'), lowBalanceThreshold: null }], asOf);
      const changed = { ...ahead, overrides: [...ahead.overrides, ...versions.map((version) => ({ ...version, changedBy: null }))] };
      const [item] = subscriptionView({ subscription: changed, plan, asOf }).items;
      expect(item).toMatchObject({
        currentPeriod: { index: 1 },
        grantedThrough: 1,
        reservedThrough: 2,
        // Period 2 grants the terms it was reserved with; the change's 700 are period 3's.
        next: { index: 2, creditsPerPeriod: '400', reserved: true },
      });
    });

    it("canceled, its final period is the reserved one, and that period's end is where a replacing subscription starts", () => {
      const canceled = { ...ahead, canceledAt: cancellationInstant(ahead, plan, asOf) };
      const [item] = subscriptionView({ subscription: canceled, plan, asOf }).items;
      expect(item).toMatchObject({
        currentPeriod: { index: 1, end: '2024-03-31T00:00:00.000Z' },
        grantedThrough: 1,
        reservedThrough: 2,
        finalPeriod: 2,
        finalPeriodEnd: '2024-04-30T00:00:00.000Z',
        next: { index: 2, reserved: true },
      });
    });
  });

  it('has no current period before the start, and a final period once canceled', () => {
    const canceled = { ...subscription, canceledAt: new Date('2024-02-01T00:00:00.000Z'), grantedThrough: new Map() };
    const [item] = subscriptionView({ subscription: canceled, plan, asOf: new Date('2024-01-01T00:00:00.000Z') }).items;
    expect(item).toMatchObject({ currentPeriod: null, creditsPerPeriod: '100', grantedThrough: null, finalPeriod: 0, finalPeriodEnd: '2024-02-29T00:00:00.000Z' });
  });

  it('shows no watermark, not an inherited member, for a product called "constructor"', () => {
    const builtIn = planFromDto({ id: 'built-in', name: 'Built-in', items: [{ productId: 'constructor', creditsPerPeriod: '1', period: 'month' }] });
    const [item] = subscriptionView({ subscription: { ...subscription, grantedThrough: new Map(), reservedThrough: new Map() }, plan: builtIn, asOf: new Date('2024-03-31T00:00:00.000Z') }).items;
    expect(item).toMatchObject({ productId: 'constructor', grantedThrough: null, reservedThrough: null });
  });
});
