import { ApiError, fieldErrors } from './apiClient';
import { actorLabel, addDecimal, bundleTerms, entryCredits, entryLabel, formatCredits, formatTime, monthName, monthOf, monthPeriod, sameBundleTerms, sameDecimal, signedCredits } from './format';

describe('what the pages show', () => {
  it('groups the digits of a decimal string without arithmetic, signs and fractions kept', () => {
    expect(formatCredits('1234567.000001')).toBe('1,234,567.000001');
    expect(formatCredits('-1000')).toBe('-1,000');
    expect(formatCredits('999')).toBe('999');
    expect(formatCredits('9999999999999999.999999')).toBe('9,999,999,999,999,999.999999');
  });

  it('signs credits that moved, and leaves nothing moved unsigned (a statement\'s "Used 0", not "−0")', () => {
    expect(signedCredits('1500.5', '−')).toBe('−1,500.5');
    expect(signedCredits('2', '+')).toBe('+2');
    for (const zero of ['0', '0.0', '0.000000']) expect(signedCredits(zero, '−')).toBe(formatCredits(zero));
    expect(entryCredits({ type: 'CreditConsumed', credits: '0' })).toBe('0');
  });

  it("says a bundle's credits and price with their digits grouped alike, wherever a bundle is offered", () => {
    expect(bundleTerms({ credits: '999999999999999.999999', price: { amount: '999999999999.99', currency: 'EUR' } })).toBe('999,999,999,999,999.999999 credits for 999,999,999,999.99 EUR');
    expect(bundleTerms({ credits: '1000', price: { amount: '9.90', currency: 'EUR' } })).toBe('1,000 credits for 9.90 EUR');
  });

  it('compares amounts by value, as the API compares terms: "9.9" is "9.90", "050" is "50"', () => {
    expect(sameDecimal('9.9', '9.90')).toBe(true);
    expect(sameDecimal('050', '50.000')).toBe(true);
    expect(sameDecimal('0.0', '-0')).toBe(true);
    expect(sameDecimal('9.9', '9.09')).toBe(false);
    expect(sameDecimal('-1', '1')).toBe(false);
    expect(sameDecimal('100', '10')).toBe(false);
    const refill = { credits: '100', price: { amount: '9.90', currency: 'EUR' } };
    expect(sameBundleTerms(refill, { credits: '100.0', price: { amount: '9.9', currency: 'EUR' } })).toBe(true);
    expect(sameBundleTerms(refill, { credits: '100', price: { amount: '9.90', currency: 'USD' } })).toBe(false);
    expect(sameBundleTerms(refill, { credits: '1', price: { amount: '9.90', currency: 'EUR' } })).toBe(false);
  });

  it('turns a month input into the statement\'s period in UTC, the year\'s end included, and refuses what is not a month', () => {
    expect(monthPeriod('2026-03')).toEqual({ from: '2026-03-01T00:00:00.000Z', to: '2026-04-01T00:00:00.000Z' });
    expect(monthPeriod('2026-12')).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' });
    expect(monthPeriod('0050-12')).toEqual({ from: '0050-12-01T00:00:00.000Z', to: '0051-01-01T00:00:00.000Z' });
    for (const text of ['', '2026-13', '2026-00', '2026-3', '26-03', '2026-03-01']) expect(monthPeriod(text)).toBeUndefined();
    expect(monthOf(Date.parse('2026-11-30T23:59:59.999Z'))).toBe('2026-11');
    expect(monthOf(Date.parse('2026-12-01T00:00:00.000Z'))).toBe('2026-12');
    expect(monthName('2026-03')).toContain('2026');
    expect(monthName('March')).toBeUndefined();
  });

  it('names the zone a time is shown in', () => {
    expect(formatTime('2026-03-01T12:00:00Z', 'UTC')).toMatch(/12:00:00.*\bUTC$/);
    // Berlin is an hour ahead in March, and says so.
    expect(formatTime('2026-03-01T12:00:00Z', 'Europe/Berlin')).toMatch(/1:00:00.*(GMT\+1|CET)$/);
  });

  it('adds credits exactly, beyond what a double holds', () => {
    expect(addDecimal('0.1', '0.2')).toBe('0.3');
    expect(addDecimal('9999999999999999.999999', '0.000001')).toBe('10000000000000000');
    expect(addDecimal('3', '2.5')).toBe('5.5');
  });

  it('names a ledger entry by its usage event, or says it was retained by hand', () => {
    expect(entryLabel({ type: 'CreditConsumed', source: 'usage', usageEvent: 'api_call' })).toBe('api_call');
    expect(entryLabel({ type: 'CreditConsumed', source: 'manual', usageEvent: null })).toBe('Usage retained by hand');
    expect(entryLabel({ type: 'CreditToppedUp', source: 'purchase', usageEvent: null })).toBe('Top-up (purchase)');
    expect(entryLabel({ type: 'CreditToppedUp', source: 'refund', usageEvent: null })).toBe('Refund');
  });

  it('names every hold entry in words, and a charge from a hold as one', () => {
    const label = (type: string, source: string | null = null) => entryLabel({ type, source, usageEvent: null });
    expect(['CreditsHeld', 'HoldCaptured', 'HoldReleased', 'HoldExpired'].map((type) => label(type))).toEqual([
      'Held for a job',
      'Hold captured',
      'Hold released',
      'Hold expired',
    ]);
    expect(label('CreditConsumed', 'hold')).toBe('Charged from a hold');
  });

  it.each([
    ['CreditToppedUp', '1000', '+1,000'],
    ['CreditConsumed', '5', '−5'],
    // The balance did not move: a hold sets aside, frees or settles what a CreditConsumed charged.
    ['CreditsHeld', '5', '5'],
    ['HoldCaptured', '5', '5'],
    ['HoldReleased', '5', '5'],
    ['HoldExpired', '0.5', '0.5'],
    ['LowBalanceWarned', null, ''],
  ] as const)('shows the credits of a %s of %j as %j', (type, credits, shown) => {
    expect(entryCredits({ type, credits })).toBe(shown);
  });
});

describe('validation errors next to their fields', () => {
  const fields = new Set(['name', 'lowBalanceThreshold', 'bundles.0.price.currency', 'consumption.1.credits']);
  const has = (field: string) => fields.has(field);

  it('puts each sentence of the API\'s message on the field it names, and the rest on the form', () => {
    const error = new ApiError(
      400,
      'validation_failed',
      "body.bundles.0.price.currency must be a 3-letter code; body must have required property 'name'; consumption[1].credits must be a decimal string; something else is wrong",
    );
    expect(fieldErrors(error, has)).toEqual({
      fields: {
        'bundles.0.price.currency': 'must be a 3-letter code',
        name: 'is required',
        'consumption.1.credits': 'must be a decimal string',
      },
      general: 'something else is wrong',
    });
  });

  it('shows anything but an API refusal as it is', () => {
    expect(fieldErrors(new Error('Failed to fetch'), has)).toEqual({ fields: {}, general: 'Failed to fetch' });
  });
});

describe('actorLabel', () => {
  const named = { kind: 'key', keyId: '0123456789ab', keyName: 'ops' } as const;
  it.each([
    [named, 'console', 'ops'],
    [{ ...named, keyName: null }, 'console', 'key 0123456789ab'],
    [{ kind: 'portal' }, 'console', 'Customer (portal)'],
    [named, 'portal', 'Your provider'],
    [{ kind: 'operator' }, 'portal', 'Your provider'],
    [{ kind: 'portal' }, 'portal', 'You'],
    [null, 'console', ''],
  ] as const)('names %j to the %s as %j', (actor, audience, label) => {
    expect(actorLabel(actor, audience)).toBe(label);
  });
});
