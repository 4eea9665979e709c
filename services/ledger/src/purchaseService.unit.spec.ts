import fc from 'fast-check';
import { ValidationError } from '@tally/domain';
import { canonicalAmount, totalPrice } from './purchaseService';

describe('totalPrice', () => {
  it.each([
    ['49.90', 3, '149.70'],
    ['0.10', 3, '0.30'],
    ['0.1', 3, '0.3'],
    ['19', 2, '38'],
    ['0.000001', 1_000_000, '1.000000'],
    ['999999999999.999999', 1_000_000, '999999999999999999.000000'],
    ['0', 5, '0'],
  ])('%s × %i = %s', (unit, quantity, total) => {
    expect(totalPrice(unit, quantity)).toBe(total);
  });

  it('refuses a quantity that is not a positive integer', () => {
    expect(() => totalPrice('1.00', 0)).toThrow(ValidationError);
    expect(() => totalPrice('1.00', 1.5)).toThrow(ValidationError);
  });

  it("keeps the price's scale for a free bundle, as for any other", () => {
    expect(totalPrice('0.00', 3)).toBe('0.00');
    expect(totalPrice('0', 3)).toBe('0');
  });

  it('equals repeated exact addition of the unit price', () => {
    // Cents as integers: the reference sum never goes through a float.
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 14n }), fc.integer({ min: 1, max: 1000 }), (cents, quantity) => {
        const unit = `${cents / 100n}.${(cents % 100n).toString().padStart(2, '0')}`;
        const expected = cents * BigInt(quantity);
        expect(totalPrice(unit, quantity)).toBe(`${expected / 100n}.${(expected % 100n).toString().padStart(2, '0')}`);
      }),
    );
  });
});

describe('canonicalAmount', () => {
  it('spells equal amounts alike, so an expected price is compared (and hashed) by value', () => {
    expect(['9.90', '9.9', '9.900000'].map(canonicalAmount)).toEqual(['9.9', '9.9', '9.9']);
    expect(['0', '0.00', '19', '19.0'].map(canonicalAmount)).toEqual(['0', '0', '19', '19']);
    expect(canonicalAmount('9.91')).not.toBe(canonicalAmount('9.9'));
    expect(() => canonicalAmount('-1')).toThrow(ValidationError);
  });
});
