import { computeCost } from './cost';
import { ConsumptionRule, CreditProduct } from './creditProduct';
import { InvalidUsageEventError } from './errors';
import { PropertyValue, UsageEvent } from './usageEvent';

const CREDIT = 1_000_000n;

const product = (...consumption: ConsumptionRule[]): CreditProduct => ({
  id: 'prod-1',
  name: 'API credits',
  description: '',
  consumption,
  lowBalanceThreshold: null,
  bundles: [],
});

const usage = (event: string, properties: Record<string, PropertyValue> = {}): UsageEvent => ({
  id: 'evt-1',
  customerId: 'cust-1',
  event,
  timestamp: 0,
  properties,
});

describe('computeCost', () => {
  it('reads a perUnitOf or where name among the event\'s own properties only, never inherited members', () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(() => computeCost(product({ event: 'x', credits: CREDIT, perUnitOf: name }), usage('x'))).toThrow(
        new InvalidUsageEventError(`property ${name} (the quantity) is missing or not a finite number`),
      );
      expect(computeCost(product({ event: 'x', credits: CREDIT, where: { [name]: 'function Object() { [native code] }' } }), usage('x'))).toEqual({
        matched: false,
      });
    }
    const own: Record<string, PropertyValue> = {};
    Object.defineProperty(own, 'constructor', { value: 3, enumerable: true });
    expect(computeCost(product({ event: 'x', credits: CREDIT, perUnitOf: 'constructor' }), usage('x', own))).toMatchObject({ credits: 3n * CREDIT });
  });


  it('charges a per-event rule once, with quantity 1', () => {
    expect(computeCost(product({ event: 'api_call', credits: 2_500_000n }), usage('api_call'))).toEqual({
      matched: true,
      credits: 2_500_000n,
      quantity: '1',
      rulesMatched: 1,
    });
  });

  it('reports no match when no rule names the event (not an error, not zero)', () => {
    expect(computeCost(product({ event: 'api_call', credits: CREDIT }), usage('login'))).toEqual({ matched: false });
    expect(computeCost(product(), usage('api_call'))).toEqual({ matched: false });
  });

  it('adds up every matching rule', () => {
    const tokens = product(
      { event: 'completion', credits: CREDIT }, // a flat fee per call
      { event: 'completion', credits: 2n, perUnitOf: 'tokens' }, // 0.000002 per token
      { event: 'completion', credits: 500_000n, where: { model: 'large' } }, // surcharge
      { event: 'embedding', credits: 7n * CREDIT },
    );
    expect(computeCost(tokens, usage('completion', { tokens: 1500, model: 'large' }))).toEqual({
      matched: true,
      credits: CREDIT + 3_000n + 500_000n,
      quantity: '1',
      rulesMatched: 3,
    });
    expect(computeCost(tokens, usage('completion', { tokens: 1500, model: 'small' }))).toMatchObject({
      credits: CREDIT + 3_000n,
      rulesMatched: 2,
    });
  });

  it('reports the quantity of the first matching rule, as an exact decimal', () => {
    const perToken = product({ event: 'completion', credits: 1n, perUnitOf: 'tokens' }, { event: 'completion', credits: 1n });
    expect(computeCost(perToken, usage('completion', { tokens: 0.5 }))).toMatchObject({ quantity: '0.5' });
    expect(computeCost(perToken, usage('completion', { tokens: '1500.250' }))).toMatchObject({ quantity: '1500.25' });
  });

  describe('rounding half up to micro-credits', () => {
    const perUnit = product({ event: 'transfer', credits: 1n, perUnitOf: 'gb' }); // 0.000001 per unit

    it.each<[number | string, bigint]>([
      [0.5, 1n], // exactly half: up
      [0.4, 0n],
      [0.49999999, 0n],
      ['0.5', 1n],
      [1.5, 2n],
      [2.5, 3n], // half up, not half even
      [0.5000001, 1n],
      [0, 0n],
      [1e-7, 0n],
    ])('0.000001 × %p → %p micro-credits', (quantity, micros) => {
      expect(computeCost(perUnit, usage('transfer', { gb: quantity }))).toMatchObject({ matched: true, credits: micros });
    });

    it('computes with the decimal the producer meant, not the float (0.1 × 3 credits = 0.3)', () => {
      const perTenth = product({ event: 'transfer', credits: 3n * CREDIT, perUnitOf: 'gb' });
      expect(computeCost(perTenth, usage('transfer', { gb: 0.1 }))).toMatchObject({ credits: 300_000n });
      const perMicro = product({ event: 'transfer', credits: 123_456_789n, perUnitOf: 'gb' }); // 123.456789
      expect(computeCost(perMicro, usage('transfer', { gb: 1.1 }))).toMatchObject({ credits: 135_802_468n }); // 135.8024679 → up
    });

    it('sums exactly before rounding once: three halves of a micro-credit cost two, not three', () => {
      const halves = product(
        { event: 'transfer', credits: 1n, perUnitOf: 'gb' },
        { event: 'transfer', credits: 1n, perUnitOf: 'gb' },
        { event: 'transfer', credits: 1n, perUnitOf: 'gb' },
      );
      // 3 × 0.0000005 = 0.0000015 → 0.000002 (rounding each term would give 0.000003)
      expect(computeCost(halves, usage('transfer', { gb: 0.5 }))).toMatchObject({ credits: 2n, rulesMatched: 3 });
      // 3 × 0.0000004 = 0.0000012 → 0.000001 (rounding each term would give 0)
      expect(computeCost(halves, usage('transfer', { gb: 0.4 }))).toMatchObject({ credits: 1n });
    });

    it('sums terms of different scales over a common denominator', () => {
      const mixed = product(
        { event: 'x', credits: 1n, perUnitOf: 'a' }, // 0.000001 × 0.25 = 0.00000025
        { event: 'x', credits: 1n, perUnitOf: 'b' }, // 0.000001 × 0.125 = 0.000000125
        { event: 'x', credits: 1n, perUnitOf: 'c' }, // 0.000001 × 0.125 = 0.000000125
      );
      expect(computeCost(mixed, usage('x', { a: 0.25, b: 0.125, c: '0.125' }))).toMatchObject({ credits: 1n }); // 0.0000005 → up
      expect(computeCost(mixed, usage('x', { a: 0.25, b: 0.125, c: '0.124' }))).toMatchObject({ credits: 0n });
    });
  });

  describe('where filters: strings compared as typed, numbers by value', () => {
    const filtered = (where: Record<string, string>) => product({ event: 'call', credits: CREDIT, where });

    it.each<[Record<string, string>, Record<string, PropertyValue>, boolean]>([
      [{ tier: 'pro' }, { tier: 'pro' }, true],
      [{ tier: 'pro' }, { tier: 'Pro' }, false],
      [{ region: '1' }, { region: 1 }, true], // number 1 matches "1"
      [{ region: '1' }, { region: '1' }, true],
      [{ region: '1.0' }, { region: 1 }, true], // a number is compared by value: 1 = 1.0
      [{ region: '1.0' }, { region: '1' }, false], // a string as typed
      [{ region: '1.5' }, { region: 1.5 }, true],
      [{ size: '2.50' }, { size: 2.5 }, true], // JSON 2.50 arrives as the number 2.5
      [{ size: '2.50' }, { size: '2.5' }, false],
      [{ size: '2.50' }, { size: '2.50' }, true],
      [{ size: '2.50' }, { size: 2.51 }, false],
      [{ size: '25e-1' }, { size: 2.5 }, true],
      [{ size: '0.1' }, { size: 0.1 }, true], // the decimal the producer meant, not the double's expansion
      [{ size: '0.30000000000000004' }, { size: 0.1 + 0.2 }, true],
      [{ size: '0.3' }, { size: 0.1 + 0.2 }, false],
      [{ big: '1e21' }, { big: 1e21 }, true],
      [{ big: '1000000000000000000000' }, { big: 1e21 }, true], // String(1e21) is "1e+21"
      [{ zero: '0.000' }, { zero: 0 }, true],
      [{ zero: '-0' }, { zero: 0 }, true],
      [{ n: '-2.50' }, { n: -2.5 }, true],
      [{ n: ' 2.5' }, { n: 2.5 }, false], // not a numeral as typed: compared as a string
      [{ n: '2.5 ' }, { n: 2.5 }, false],
      [{ n: '+2.5' }, { n: 2.5 }, false],
      [{ n: '2,5' }, { n: 2.5 }, false],
      [{ n: 'true' }, { n: 1 }, false],
      [{ cached: '1' }, { cached: true }, false], // booleans as ever, "true" or "false"
      [{ tiny: '5e-324' }, { tiny: 5e-324 }, true], // beyond 40 digits: compared as written
      [{ cached: 'true' }, { cached: true }, true],
      [{ cached: 'false' }, { cached: false }, true],
      [{ cached: 'true' }, { cached: false }, false],
      [{ tier: 'pro' }, {}, false], // missing property
      [{ tier: 'null' }, { tier: null }, false], // null is absent, not "null"
      [{ tier: '' }, {}, false],
      [{ tier: '' }, { tier: '' }, true],
      [{ tier: 'pro', region: 'eu' }, { tier: 'pro', region: 'eu', other: 1 }, true], // every entry must match
      [{ tier: 'pro', region: 'eu' }, { tier: 'pro', region: 'us' }, false],
      [{ tier: 'pro', region: 'eu' }, { tier: 'pro' }, false],
    ])('where %p on %p → matched %p', (where, properties, matched) => {
      expect(computeCost(filtered(where), usage('call', properties)).matched).toBe(matched);
    });

    it('matches an Avro double or long as the JSON number, and a long beyond 2^53 (read as its decimal string) as typed', () => {
      // The decoder unwraps {"double": 1.0} to the number 1; a long beyond 2^53 arrives as its digits.
      expect(computeCost(filtered({ gpu: '1.0' }), usage('call', { gpu: 1 })).matched).toBe(true);
      expect(computeCost(filtered({ trace: '9007199254740993' }), usage('call', { trace: '9007199254740993' })).matched).toBe(true);
      expect(computeCost(filtered({ trace: '9007199254740993.0' }), usage('call', { trace: '9007199254740993' })).matched).toBe(false);
    });

    it('still requires the event name to match', () => {
      expect(computeCost(filtered({ tier: 'pro' }), usage('other', { tier: 'pro' })).matched).toBe(false);
    });
  });

  describe('invalid quantities make the event invalid', () => {
    const perUnit = product({ event: 'transfer', credits: CREDIT, perUnitOf: 'gb' });

    it.each<[string, PropertyValue | undefined]>([
      ['missing', undefined],
      ['null', null],
      ['a boolean', true],
      ['non-numeric text', 'lots'],
      ['an empty string', ''],
      ['negative', -1],
      ['a negative string', '-0.5'],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['larger than 10^15', 1e15 + 1],
      ['huge', 1e300],
      ['a huge string', '1'.repeat(30)],
    ])('rejects a quantity that is %s', (_what, gb) => {
      const properties: Record<string, PropertyValue> = gb === undefined ? {} : { gb };
      expect(() => computeCost(perUnit, usage('transfer', properties))).toThrow(InvalidUsageEventError);
      expect(() => computeCost(perUnit, usage('transfer', properties))).toThrow(/gb/);
    });

    it.each<PropertyValue>(['0e50', '0e-50', '0.0e-41', `0.${'0'.repeat(50)}`, -0])('reads %p as a quantity of 0, not as a missing one', (gb) => {
      expect(computeCost(perUnit, usage('transfer', { gb }))).toEqual({ matched: true, credits: 0n, quantity: '0', rulesMatched: 1 });
    });

    it.each<PropertyValue>(['1e-41', 5e-324, 1e-45, `0.${'0'.repeat(40)}1`])('rejects %p for having more than 40 fractional digits, as such', (gb) => {
      expect(() => computeCost(perUnit, usage('transfer', { gb }))).toThrow(new InvalidUsageEventError('property gb (the quantity) has more than 40 fractional digits'));
    });

    it.each<PropertyValue>(['1e41', 1e300])('rejects %p as larger than 10^15', (gb) => {
      expect(() => computeCost(perUnit, usage('transfer', { gb }))).toThrow(new InvalidUsageEventError('property gb (the quantity) is larger than 10^15'));
    });

    it('accepts 10^15 units and numeric strings', () => {
      expect(computeCost(product({ event: 'transfer', credits: 1n, perUnitOf: 'gb' }), usage('transfer', { gb: 1e15 }))).toMatchObject({
        credits: 10n ** 15n,
      });
      expect(computeCost(perUnit, usage('transfer', { gb: ' 2.5 ' }))).toMatchObject({ credits: 2_500_000n });
    });

    it('only checks the quantity of rules that match', () => {
      const twoEvents = product({ event: 'transfer', credits: CREDIT, perUnitOf: 'gb' }, { event: 'call', credits: CREDIT });
      expect(computeCost(twoEvents, usage('call'))).toMatchObject({ credits: CREDIT });
      const filteredPerUnit = product({ event: 'transfer', credits: CREDIT, perUnitOf: 'gb', where: { tier: 'pro' } });
      expect(computeCost(filteredPerUnit, usage('transfer', { tier: 'free' }))).toEqual({ matched: false });
    });

    it('rejects a cost beyond 10^15 credits', () => {
      const expensive = product({ event: 'transfer', credits: 10n ** 15n * CREDIT, perUnitOf: 'gb' });
      expect(computeCost(expensive, usage('transfer', { gb: 1 }))).toMatchObject({ credits: 10n ** 15n * CREDIT });
      expect(() => computeCost(expensive, usage('transfer', { gb: 2 }))).toThrow(InvalidUsageEventError);
    });
  });

  it('a zero-credit rule matches and costs nothing (the decider then records nothing)', () => {
    expect(computeCost(product({ event: 'ping', credits: 0n }), usage('ping'))).toEqual({
      matched: true,
      credits: 0n,
      quantity: '1',
      rulesMatched: 1,
    });
  });
});
