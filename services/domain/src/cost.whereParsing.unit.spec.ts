/**
 * computeCost runs per usage event (the metering hot path) and a where value is a product
 * constant: its numeric reading is parsed once per rule, not once per event.
 */
import { computeCost } from './cost';
import { CreditProduct } from './creditProduct';
import * as decimal from './decimal';
import { PropertyValue } from './usageEvent';

// Counts the decimal parses cost.ts asks for; the parsing itself is the real one.
jest.mock('./decimal', () => {
  const actual = jest.requireActual<typeof import('./decimal')>('./decimal');
  return { ...actual, toExactDecimal: jest.fn(actual.toExactDecimal), readExactDecimal: jest.fn(actual.readExactDecimal) };
});
const parses = () => jest.mocked(decimal.toExactDecimal).mock.calls.length + jest.mocked(decimal.readExactDecimal).mock.calls.length;

const tiers: CreditProduct = {
  id: 'p',
  name: 'p',
  description: '',
  consumption: [
    { event: 'call', credits: 1_000_000n, where: { tier: '1' } },
    { event: 'call', credits: 2_000_000n, where: { tier: '2.0' } },
  ],
  lowBalanceThreshold: null,
  bundles: [],
};
const cost = (tier: PropertyValue) => computeCost(tiers, { id: 'e', customerId: 'c', event: 'call', timestamp: 0, properties: { tier } });

describe('where filters on a numeric property', () => {
  it('parse no where value per event, and no integer the event carries', () => {
    cost(0); // the first event may read the product's where values
    const before = parses();
    for (let tier = 3; tier < 103; tier += 1) expect(cost(tier)).toEqual({ matched: false });
    expect(cost(2)).toMatchObject({ matched: true, credits: 2_000_000n }); // "2.0" is 2: the value, read once
    expect(cost(1)).toMatchObject({ matched: true, credits: 1_000_000n });
    expect(parses() - before).toBe(0);
  });

  it('parse a fractional number only when it is the where value\'s double', () => {
    const before = parses();
    for (const tier of [0.5, 1.5, 2.5, -2, 1e300, 2 ** 60]) expect(cost(tier)).toEqual({ matched: false });
    expect(parses() - before).toBe(0);
  });
});
