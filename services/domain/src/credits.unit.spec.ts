import fc from 'fast-check';
import {
  formatCredits,
  MAX_CREDITS,
  MICROS_PER_CREDIT,
  parseCredits,
  parseNonNegativeCredits,
  parsePositiveCredits,
  parseStoredCredits,
} from './credits';
import { InvalidAmountError } from './errors';

describe('parseCredits', () => {
  it.each([
    ['0', 0n],
    ['1', 1_000_000n],
    ['12.5', 12_500_000n],
    ['0.000001', 1n],
    ['0.1', 100_000n],
    ['007.010', 7_010_000n],
    ['123456.654321', 123_456_654_321n],
    ['-0.25', -250_000n],
    ['-0', 0n],
    ['1000000000000000', MAX_CREDITS],
    ['-1000000000000000', -MAX_CREDITS],
  ])('parses %p exactly as %p micro-credits', (text, micros) => {
    expect(parseCredits(text)).toBe(micros);
  });

  it.each([
    '0.0000001', // 7 fractional digits
    '1.1234567',
    '1e5',
    '1E5',
    ' 1',
    '1 ',
    '1.',
    '.5',
    '+1',
    '--1',
    '1,5',
    '0x10',
    'Infinity',
    'NaN',
    '',
    '-',
    '١', // a non-ASCII digit
    '1_000',
  ])('rejects %p', (text) => {
    expect(() => parseCredits(text)).toThrow(InvalidAmountError);
  });

  it('rejects amounts beyond 10^15 credits, in both directions', () => {
    expect(() => parseCredits('1000000000000000.000001')).toThrow(/10\^15/);
    expect(() => parseCredits('-1000000000000000.000001')).toThrow(InvalidAmountError);
    expect(() => parseCredits('9999999999999999')).toThrow(InvalidAmountError);
    expect(() => parseCredits('10000000000000000')).toThrow(InvalidAmountError);
    expect(() => parseCredits('1'.repeat(10_000))).toThrow(InvalidAmountError);
  });

  it('rejects non-strings (a float never holds an amount)', () => {
    expect(() => parseCredits(12.5 as unknown as string)).toThrow(InvalidAmountError);
    expect(() => parseCredits(12n as unknown as string)).toThrow(InvalidAmountError);
    expect(() => parseCredits(null as unknown as string)).toThrow(InvalidAmountError);
  });

  it('names the field in its message', () => {
    expect(() => parseCredits('abc', 'startingBalance')).toThrow(/startingBalance/);
  });

  it('positive and non-negative variants draw the line at zero', () => {
    expect(parsePositiveCredits('0.000001')).toBe(1n);
    expect(() => parsePositiveCredits('0')).toThrow(InvalidAmountError);
    expect(() => parsePositiveCredits('-1')).toThrow(InvalidAmountError);
    expect(parseNonNegativeCredits('0')).toBe(0n);
    expect(parseNonNegativeCredits('-0')).toBe(0n);
    expect(() => parseNonNegativeCredits('-0.000001')).toThrow(InvalidAmountError);
  });
});

describe('formatCredits', () => {
  it.each([
    [0n, '0'],
    [1n, '0.000001'],
    [12_500_000n, '12.5'],
    [1_000_000n, '1'],
    [-250_000n, '-0.25'],
    [-1n, '-0.000001'],
    [10_000_000n, '10'],
    [MAX_CREDITS, '1000000000000000'],
  ])('writes %p as %p (shortest form)', (micros, text) => {
    expect(formatCredits(micros)).toBe(text);
  });

  it('writes amounts a double holds (its fast path) digit for digit as the decimal definition, at and around 2^53', () => {
    const reference = (micros: bigint): string => {
      const digits = (micros < 0n ? -micros : micros).toString().padStart(7, '0');
      const fraction = digits.slice(-6).replace(/0+$/, '');
      return `${micros < 0n ? '-' : ''}${digits.slice(0, -6)}${fraction ? `.${fraction}` : ''}`;
    };
    const edge = BigInt(Number.MAX_SAFE_INTEGER);
    const near = fc.oneof(fc.bigInt({ min: -edge - 1000n, max: edge + 1000n }), fc.bigInt({ min: edge - 10_000_000n, max: edge + 10_000_000n }), fc.bigInt({ min: -10_000_000n, max: 10_000_000n }));
    fc.assert(
      fc.property(near, (micros) => {
        expect(formatCredits(micros)).toBe(reference(micros));
      }),
      { numRuns: 2000 },
    );
    for (const micros of [edge, edge + 1n, -edge, -edge - 1n, 100n, 10n, 9_007_199_254_000_000n]) expect(formatCredits(micros)).toBe(reference(micros));
  });

  it('round-trips every amount in range: parse(format(x)) = x', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX_CREDITS, max: MAX_CREDITS }), (micros) => {
        expect(parseCredits(formatCredits(micros))).toBe(micros);
      }),
    );
  });

  it('round-trips canonical decimal strings: format(parse(s)) = s', () => {
    const canonical = fc
      .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), fc.integer({ min: 0, max: 999_999 }))
      .filter(([negative, whole, fraction]) => !(negative && whole === 0n && fraction === 0))
      .map(([negative, whole, fraction]) => {
        const digits = fraction.toString().padStart(6, '0').replace(/0+$/, '');
        return `${negative ? '-' : ''}${whole}${digits ? `.${digits}` : ''}`;
      });
    fc.assert(
      fc.property(canonical, (text) => {
        expect(formatCredits(parseCredits(text))).toBe(text);
      }),
    );
  });

  it('parses as exactly micros / 10^6 (checked against digit strings)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 15n }), fc.stringMatching(/^\d{0,6}$/), (whole, fraction) => {
        const text = fraction === '' ? `${whole}` : `${whole}.${fraction}`;
        const expected = whole * MICROS_PER_CREDIT + BigInt(fraction.padEnd(6, '0'));
        if (expected > MAX_CREDITS) expect(() => parseCredits(text)).toThrow(InvalidAmountError);
        else expect(parseCredits(text)).toBe(expected);
      }),
    );
  });
});

describe('parseStoredCredits', () => {
  it('reads what the ledger wrote, also beyond the 10^15 input limit', () => {
    expect(parseStoredCredits('12.5')).toBe(12_500_000n);
    expect(parseStoredCredits('2000000000000000')).toBe(2n * MAX_CREDITS);
    expect(parseStoredCredits('-3000000000000000.000001')).toBe(-3n * MAX_CREDITS - 1n);
    expect(parseStoredCredits('9'.repeat(31))).toBe((10n ** 31n - 1n) * MICROS_PER_CREDIT);
  });

  it('round-trips any formatted amount up to 10^31 credits', () => {
    const limit = 10n ** 31n * MICROS_PER_CREDIT - 1n;
    fc.assert(
      fc.property(fc.bigInt({ min: -limit, max: limit }), (micros) => {
        expect(parseStoredCredits(formatCredits(micros))).toBe(micros);
      }),
    );
  });

  it.each(['1e5', ' 1', '1.', '.5', '+1', '0.0000001', '', '1'.repeat(32)])('still rejects %p', (text) => {
    expect(() => parseStoredCredits(text)).toThrow(InvalidAmountError);
  });

  it('rejects non-strings', () => {
    expect(() => parseStoredCredits(5 as unknown as string)).toThrow(InvalidAmountError);
  });
});
