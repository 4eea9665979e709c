import fc from 'fast-check';
import { divideRoundHalfUp, formatExactDecimal, readExactDecimal, toExactDecimal } from './decimal';

describe('toExactDecimal', () => {
  it.each<[number | string, bigint, number]>([
    [0, 0n, 0],
    [-0, 0n, 0],
    [5, 5n, 0],
    [0.1, 1n, 1], // the producer meant 0.1, not 0.1000000000000000055511151231257827
    [1.1, 11n, 1],
    [0.30000000000000004, 30000000000000004n, 17],
    [1e-7, 1n, 7],
    [2.5e-7, 25n, 8],
    [1.5e21, 15n * 10n ** 20n, 0],
    [123456789.123456, 123456789123456n, 6],
    [Number.MAX_SAFE_INTEGER, 9007199254740991n, 0],
    [-2.5, -25n, 1],
    ['42', 42n, 0],
    ['0.000001', 1n, 6],
    ['1.50', 150n, 2],
    [' 7 ', 7n, 0],
    ['1e3', 1000n, 0],
    ['1E-3', 1n, 3],
    ['12.5e+1', 125n, 0],
    ['12.55e1', 1255n, 1],
    ['-3.25', -325n, 2],
    ['00012', 12n, 0],
  ])('reads %p as %p × 10^-%p', (value, digits, scale) => {
    expect(toExactDecimal(value)).toEqual({ digits, scale });
  });

  it.each<number | string>([
    NaN,
    Infinity,
    -Infinity,
    'abc',
    '',
    '   ',
    '1.',
    '.5',
    '+1',
    '1e',
    '0x1A',
    '1,5',
    'Infinity',
    'NaN',
    '1.2.3',
    '1'.repeat(65),
    '1e41', // beyond the supported scale, either way
    '1e-41',
  ])('rejects %p', (value) => {
    expect(toExactDecimal(value)).toBeUndefined();
  });

  it.each<[number | string, bigint, number]>([
    // Zero is zero whatever its exponent: it has no digit beyond any scale.
    ['0e50', 0n, 0],
    ['0e-50', 0n, 0],
    ['-0e-99', 0n, 0],
    [`0.${'0'.repeat(45)}`, 0n, 0],
    ['0.000000e-45', 0n, 0],
    // A zero written at a scale in range keeps it, as any amount does: a price of 0.00.
    ['0.00', 0n, 2],
    ['0', 0n, 0],
    // Trailing zeros beyond the supported scale are not digits of the value either.
    [`1.${'0'.repeat(45)}`, 10n ** 40n, 40],
    ['100e-42', 1n, 40],
  ])('reads %p, written beyond the supported scale, as %p × 10^-%p', (value, digits, scale) => {
    expect(toExactDecimal(value)).toEqual({ digits, scale });
  });

  it.each<[number | string, string]>([
    ['abc', 'not_a_number'],
    [NaN, 'not_a_number'],
    ['1'.repeat(65), 'not_a_number'],
    ['1e-41', 'more_than_40_fractional_digits'],
    [5e-324, 'more_than_40_fractional_digits'],
    [1e-45, 'more_than_40_fractional_digits'],
    ['1e41', 'too_large'],
    [1.5e300, 'too_large'],
  ])('says why %p is not read: %p', (value, problem) => {
    expect(readExactDecimal(value)).toBe(problem);
  });

  it('equals the shortest round-trip text of any finite double, exactly', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }), (value) => {
        const exact = toExactDecimal(value);
        if (exact === undefined) {
          // Only numbers needing more than 40 fractional digits are out of range.
          expect(Math.abs(value)).toBeLessThan(1e-20);
          return;
        }
        expect(Number(formatExactDecimal(exact))).toBe(value === 0 ? 0 : value);
      }),
    );
  });
});

describe('formatExactDecimal', () => {
  it.each<[bigint, number, string]>([
    [0n, 0, '0'],
    [15n, 1, '1.5'],
    [150n, 2, '1.5'],
    [1n, 7, '0.0000001'],
    [-25n, 3, '-0.025'],
    [100n, 2, '1'],
    [123n, 0, '123'],
  ])('writes %p × 10^-%p as %p', (digits, scale, text) => {
    expect(formatExactDecimal({ digits, scale })).toBe(text);
  });

  it('round-trips through toExactDecimal to the same value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer({ min: 0, max: 20 }), (digits, scale) => {
        const parsed = toExactDecimal(formatExactDecimal({ digits, scale }));
        expect(parsed).toBeDefined();
        // Same value: a / 10^s = b / 10^t  ⇔  a · 10^t = b · 10^s.
        expect(parsed!.digits * 10n ** BigInt(scale)).toBe(digits * 10n ** BigInt(parsed!.scale));
      }),
    );
  });
});

describe('divideRoundHalfUp', () => {
  it.each<[bigint, bigint, bigint]>([
    [0n, 7n, 0n],
    [10n, 5n, 2n],
    [14n, 10n, 1n],
    [15n, 10n, 2n], // half goes up
    [25n, 10n, 3n],
    [16n, 10n, 2n],
    [1n, 3n, 0n],
    [2n, 3n, 1n],
    [5n, 10n, 1n],
    [4n, 10n, 0n],
    [1_500_000n, 1_000_000n, 2n],
    [1_499_999n, 1_000_000n, 1n],
    [10n ** 40n + 5n * 10n ** 19n, 10n ** 20n, 10n ** 20n + 1n],
  ])('%p / %p → %p', (numerator, denominator, quotient) => {
    expect(divideRoundHalfUp(numerator, denominator)).toBe(quotient);
  });

  it('is the integer nearest to n/d, halves rounded up (checked by remainders)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.bigInt({ min: 1n, max: 10n ** 20n }), (n, d) => {
        const q = divideRoundHalfUp(n, d);
        // q - 1/2 ≤ n/d < q + 1/2, i.e. (2q - 1)·d ≤ 2n < (2q + 1)·d
        expect((2n * q - 1n) * d <= 2n * n).toBe(true);
        expect(2n * n < (2n * q + 1n) * d).toBe(true);
      }),
    );
  });
});
