import { parseCredits, ValidationError } from '@tally/domain';
import { finalPeriod } from './billingPeriod';
import { Plan, planFromDto, planToDto } from './plan';
import { assertStartWithinBounds, cancellationInstant, MAX_BACKDATE_YEARS, MAX_START_AHEAD_YEARS, nextOverrideVersions, overridesFromDto, termsAt, thresholdSetAt } from './subscription';

const plan: Plan = planFromDto({
  id: 'pro',
  name: 'Pro',
  items: [
    { productId: 'api', creditsPerPeriod: '100', period: 'month', lowBalanceThreshold: '10' },
    { productId: 'storage', creditsPerPeriod: '5.5', period: { days: 7 } },
  ],
});
const [api, storage] = plan.items as [Plan['items'][0], Plan['items'][0]];

describe('planFromDto', () => {
  it('parses amounts exactly and round-trips through the JSON form', () => {
    expect(api).toEqual({ productId: 'api', creditsPerPeriod: 100_000_000n, period: 'month', lowBalanceThreshold: 10_000_000n });
    expect(storage.lowBalanceThreshold).toBeNull();
    expect(planFromDto(planToDto(plan))).toEqual(plan);
  });

  it.each([
    ['no items', { items: [] }],
    ['a product twice', { items: [{ productId: 'a', creditsPerPeriod: '1', period: 'month' }, { productId: 'a', creditsPerPeriod: '2', period: 'year' }] }],
    ['zero credits', { items: [{ productId: 'a', creditsPerPeriod: '0', period: 'month' }] }],
    ['a float-like amount', { items: [{ productId: 'a', creditsPerPeriod: '1e3', period: 'month' }] }],
    ['an unknown period', { items: [{ productId: 'a', creditsPerPeriod: '1', period: 'week' }] }],
    ['zero days', { items: [{ productId: 'a', creditsPerPeriod: '1', period: { days: 0 } }] }],
    ['a negative threshold', { items: [{ productId: 'a', creditsPerPeriod: '1', period: 'month', lowBalanceThreshold: '-1' }] }],
    ['a blank name', { name: ' ' }],
    ['a bad id', { id: '-x' }],
  ])('refuses %s', (_, change) => {
    const dto = { ...planToDto(plan), ...change } as Parameters<typeof planFromDto>[0];
    expect(() => planFromDto(dto)).toThrow(ValidationError);
  });

  it('counts a name in characters (code points), as the API schema does, not UTF-16 units', () => {
    const emoji = '\u{1F600}';
    expect(planFromDto({ ...planToDto(plan), name: emoji.repeat(256) }).name).toBe(emoji.repeat(256));
    expect(() => planFromDto({ ...planToDto(plan), name: emoji.repeat(257) })).toThrow('name must be a non-empty string of at most 256 characters');
  });
});

describe('overrides', () => {
  it('refuses a product outside the plan, a product twice and a non-positive amount', () => {
    expect(() => overridesFromDto([{ productId: 'other', creditsPerPeriod: '1' }], plan)).toThrow(/not a product of plan/);
    expect(() => overridesFromDto([{ productId: 'api' }, { productId: 'api' }], plan)).toThrow(/overridden twice/);
    expect(() => overridesFromDto([{ productId: 'api', creditsPerPeriod: '0' }], plan)).toThrow(ValidationError);
  });

  it('take the version in force for the period, field by field falling back on the plan item', () => {
    const subscription = {
      overrides: [
        { productId: 'api', effectiveFromPeriod: 0, creditsPerPeriod: parseCredits('250'), lowBalanceThreshold: null },
        { productId: 'api', effectiveFromPeriod: 3, creditsPerPeriod: null, lowBalanceThreshold: parseCredits('1') },
        { productId: 'storage', effectiveFromPeriod: 1, creditsPerPeriod: parseCredits('9'), lowBalanceThreshold: null },
      ],
    };
    expect(termsAt(subscription, api, 0)).toEqual({ creditsPerPeriod: parseCredits('250'), lowBalanceThreshold: parseCredits('10') });
    expect(termsAt(subscription, api, 2)).toEqual({ creditsPerPeriod: parseCredits('250'), lowBalanceThreshold: parseCredits('10') });
    expect(termsAt(subscription, api, 3)).toEqual({ creditsPerPeriod: parseCredits('100'), lowBalanceThreshold: parseCredits('1') });
    expect(termsAt(subscription, storage, 0).creditsPerPeriod).toBe(parseCredits('5.5'));
    expect(termsAt(subscription, storage, 1).creditsPerPeriod).toBe(parseCredits('9'));
  });

  it('set the warning limit at period 0 and where it changes, not where terms restate it or have none', () => {
    const subscription = {
      overrides: [
        { productId: 'api', effectiveFromPeriod: 2, creditsPerPeriod: null, lowBalanceThreshold: parseCredits('50') },
        { productId: 'api', effectiveFromPeriod: 3, creditsPerPeriod: parseCredits('7'), lowBalanceThreshold: parseCredits('50') },
        { productId: 'api', effectiveFromPeriod: 4, creditsPerPeriod: null, lowBalanceThreshold: null },
        { productId: 'storage', effectiveFromPeriod: 1, creditsPerPeriod: null, lowBalanceThreshold: parseCredits('2') },
      ],
    };
    // api: the plan's 10 at 0 and 1, the override's 50 from 2 (restated at 3), the plan's again from 4.
    expect([0, 1, 2, 3, 4, 5].map((period) => thresholdSetAt(subscription, api, period))).toEqual([
      parseCredits('10'),
      null,
      parseCredits('50'),
      null,
      parseCredits('10'),
      null,
    ]);
    // storage: none in the plan, so period 0 sets nothing; the override's from 1.
    expect([0, 1, 2].map((period) => thresholdSetAt(subscription, storage, period))).toEqual([null, parseCredits('2'), null]);
  });

  it("a change applies from each item's own next period, and covers every item of the plan", () => {
    const startsAt = new Date('2024-01-31T00:00:00.000Z');
    const now = new Date('2024-03-10T00:00:00.000Z'); // month period 1 (from Feb 29); week period 5
    const versions = nextOverrideVersions({ startsAt, reservedThrough: new Map([['api', 1]]) }, plan, overridesFromDto([{ productId: 'api', creditsPerPeriod: '7' }], plan), now);
    expect(versions).toEqual([
      { productId: 'api', effectiveFromPeriod: 2, creditsPerPeriod: parseCredits('7'), lowBalanceThreshold: null },
      { productId: 'storage', effectiveFromPeriod: 6, creditsPerPeriod: null, lowBalanceThreshold: null },
    ]);
  });

  it('a change never applies from a period already reserved (a scheduler whose clock is ahead granted it, or is granting it)', () => {
    const startsAt = new Date('2024-01-31T00:00:00.000Z');
    // Month period 1 by this clock; the scheduler reserved api's period 2 already.
    const versions = nextOverrideVersions({ startsAt, reservedThrough: new Map([['api', 2], ['storage', 3]]) }, plan, [], new Date('2024-03-10T00:00:00.000Z'));
    expect(versions.map((v) => [v.productId, v.effectiveFromPeriod])).toEqual([
      ['api', 3],
      ['storage', 6],
    ]);
  });

  it('a change before the start replaces the terms of period 0', () => {
    const startsAt = new Date('2024-05-01T00:00:00.000Z');
    const versions = nextOverrideVersions({ startsAt, reservedThrough: new Map() }, plan, [], new Date('2024-04-01T00:00:00.000Z'));
    expect(versions.map((v) => v.effectiveFromPeriod)).toEqual([0, 0]);
  });

  it('a product named like an Object.prototype member with no watermark takes the next period, not NaN', () => {
    const builtIn = planFromDto({ id: 'built-in', name: 'Built-in', items: [{ productId: 'constructor', creditsPerPeriod: '1', period: 'month' }] });
    const startsAt = new Date('2024-01-31T00:00:00.000Z');
    const versions = nextOverrideVersions({ startsAt, reservedThrough: new Map() }, builtIn, [], new Date('2024-03-10T00:00:00.000Z'));
    expect(versions.map((v) => [v.productId, v.effectiveFromPeriod])).toEqual([['constructor', 2]]);
  });
});

describe('assertStartWithinBounds', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const daysBefore = (days: number) => new Date(now.getTime() - days * 86_400_000);

  it('takes a start up to 10 years back (a daily plan backdated five years too) and up to 1 year ahead', () => {
    expect(MAX_BACKDATE_YEARS).toBe(10);
    expect(MAX_START_AHEAD_YEARS).toBe(1);
    expect(() => assertStartWithinBounds(new Date('2016-03-01T12:00:00Z'), now)).not.toThrow();
    expect(() => assertStartWithinBounds(daysBefore(5 * 366), now)).not.toThrow();
    expect(() => assertStartWithinBounds(now, now)).not.toThrow();
    expect(() => assertStartWithinBounds(new Date('2027-03-01T12:00:00Z'), now)).not.toThrow();
  });

  it('refuses a start further back in time, whatever the period: year 26 for 2026 on a yearly plan is 2,000 grants', () => {
    expect(() => assertStartWithinBounds(new Date('2016-03-01T11:59:59.999Z'), now)).toThrow(ValidationError);
    expect(() => assertStartWithinBounds(new Date('0026-03-01T00:00:00Z'), now)).toThrow(
      'startsAt 0026-03-01T00:00:00.000Z is more than 10 years before now (2026-03-01T12:00:00.000Z): a subscription may start at most 10 years back',
    );
  });

  it('refuses a start more than a year ahead', () => {
    expect(() => assertStartWithinBounds(new Date('2027-03-01T12:00:00.001Z'), now)).toThrow(ValidationError);
    expect(() => assertStartWithinBounds(new Date('9999-12-31T23:59:59Z'), now)).toThrow(
      'startsAt 9999-12-31T23:59:59.000Z is more than 1 year after now (2026-03-01T12:00:00.000Z): a subscription may start at most 1 year ahead',
    );
  });
});

describe('cancellationInstant', () => {
  const startsAt = new Date('2024-01-01T00:00:00.000Z');
  const now = new Date('2024-01-20T00:00:00.000Z'); // api period 0, storage period 2 (days 14-20)

  it('is now while no period after the one in progress is reserved', () => {
    const at = cancellationInstant({ startsAt, reservedThrough: new Map([['api', 0], ['storage', 2]]) }, plan, now);
    expect(at).toEqual(now);
  });

  it("is the start of a later period already reserved, so every item's final period takes in what it reserved", () => {
    // A scheduler whose clock ran ahead reserved storage's period 3 (from Jan 22): granted, or being granted.
    const reservedThrough = new Map([['api', 0], ['storage', 3]]);
    const at = cancellationInstant({ startsAt, reservedThrough }, plan, now);
    expect(at).toEqual(new Date('2024-01-22T00:00:00.000Z'));
    for (const item of plan.items) {
      expect({ product: item.productId, final: finalPeriod(startsAt, item.period, at) }).toEqual({ product: item.productId, final: reservedThrough.get(item.productId) });
    }
  });
});
