import fc from 'fast-check';
import { computeCost } from './cost';
import { ConsumptionRule, CreditProduct } from './creditProduct';
import { MAX_CREDITS } from './credits';
import { toExactDecimal } from './decimal';
import { PropertyValue } from './usageEvent';

/**
 * Property-based tests of the cost: checked against a big-decimal calculation written
 * here from digit strings (long multiplication on integers, remainder-based rounding),
 * independently of decimal.ts.
 */

const CREDIT = 1_000_000n;

/** A quantity as a plain decimal string: up to 15 significant digits, up to 9 fractional ones. */
const quantityText = fc
  .tuple(fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), fc.integer({ min: 0, max: 9 }))
  .map(([digits, scale]) => {
    const text = digits.toString().padStart(scale + 1, '0');
    return scale === 0 ? text : `${text.slice(0, text.length - scale)}.${text.slice(text.length - scale)}`;
  });

/** Exact value of a plain decimal string as numerator / 10^fractionDigits. */
function fraction(text: string): { numerator: bigint; denominator: bigint } {
  const [whole, decimals = ''] = text.split('.');
  return { numerator: BigInt(`${whole}${decimals}`), denominator: 10n ** BigInt(decimals.length) };
}

/** round-half-up(Σ credits_i × q_i) in micro-credits, over the exact rational sum. */
function expectedCost(terms: readonly { credits: bigint; quantity: string }[]): bigint {
  let numerator = 0n;
  let denominator = 1n;
  for (const term of terms) {
    const q = fraction(term.quantity);
    // a/b + c·p/d = (a·d + c·p·b) / (b·d)
    numerator = numerator * q.denominator + term.credits * q.numerator * denominator;
    denominator *= q.denominator;
  }
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  return remainder * 2n >= denominator ? quotient + 1n : quotient;
}

const credits = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n }), // a few micro-credits: rounding dominates
  fc.bigInt({ min: 0n, max: 1_000n * CREDIT }),
);

const product = (consumption: ConsumptionRule[]): CreditProduct => ({
  id: 'prod-1',
  name: 'p',
  description: '',
  consumption,
  lowBalanceThreshold: null,
  bundles: [],
});

const costOf = (consumption: ConsumptionRule[], properties: Record<string, PropertyValue>): bigint => {
  const cost = computeCost(product(consumption), { id: 'e', customerId: 'c', event: 'use', timestamp: 0, properties });
  if (!cost.matched) throw new Error('expected a match');
  return cost.credits;
};

/** Rules, each per unit of its own property, with their quantities. */
const terms = fc.array(fc.record({ credits, quantity: quantityText }), { minLength: 1, maxLength: 6 });

function rulesFor(input: readonly { credits: bigint; quantity: string }[], asNumbers: boolean) {
  const rules: ConsumptionRule[] = input.map((term, i) => ({ event: 'use', credits: term.credits, perUnitOf: `q${i}` }));
  const properties = Object.fromEntries(input.map((term, i) => [`q${i}`, asNumbers ? Number(term.quantity) : term.quantity]));
  return { rules, properties };
}

/** Inputs computeCost accepts: every quantity at most 10^15 units, the cost at most 10^15 credits. */
const withinLimit = (input: readonly { credits: bigint; quantity: string }[]) =>
  input.every((term) => {
    const q = fraction(term.quantity);
    return q.numerator <= 10n ** 15n * q.denominator;
  }) && expectedCost(input) <= MAX_CREDITS;

describe('cost properties', () => {
  it('(6) equals round-half-up of the exact sum Σ credits × quantity, for quantities given as strings', () => {
    fc.assert(
      fc.property(terms.filter(withinLimit), (input) => {
        const { rules, properties } = rulesFor(input, false);
        expect(costOf(rules, properties)).toBe(expectedCost(input));
      }),
    );
  });

  it('(6) gives the same for the same quantities given as JSON/Avro numbers', () => {
    fc.assert(
      fc.property(terms.filter(withinLimit), (input) => {
        const { rules, properties } = rulesFor(input, true);
        expect(costOf(rules, properties)).toBe(expectedCost(input));
      }),
    );
  });

  it('(6) k identical rules cost round(k·c·q), not k·round(c·q)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.bigInt({ min: 0n, max: 10n }), quantityText, (k, c, q) => {
        const rules: ConsumptionRule[] = Array.from({ length: k }, () => ({ event: 'use', credits: c, perUnitOf: 'q' }));
        expect(costOf(rules, { q })).toBe(expectedCost([{ credits: BigInt(k) * c, quantity: q }]));
      }),
    );
  });

  it('(6) is monotone: more quantity or an extra rule never costs less', () => {
    fc.assert(
      fc.property(terms.filter(withinLimit), fc.nat({ max: 5 }), quantityText, credits, (input, index, extra, extraCredits) => {
        const { rules, properties } = rulesFor(input, false);
        const base = costOf(rules, properties);
        // Raise one quantity.
        const i = index % input.length;
        const raised = input.map((term, j) => (j === i ? { ...term, quantity: addDecimal(term.quantity, extra) } : term));
        if (withinLimit(raised)) {
          const r = rulesFor(raised, false);
          expect(costOf(r.rules, r.properties) >= base).toBe(true);
        }
        // Add a rule.
        const more = [...input, { credits: extraCredits, quantity: extra }];
        if (withinLimit(more)) {
          const m = rulesFor(more, false);
          expect(costOf(m.rules, m.properties) >= base).toBe(true);
        }
      }),
    );
  });

  it('(6) is additive up to rounding: cost(A ∪ B) differs from cost(A) + cost(B) by at most one micro-credit', () => {
    fc.assert(
      fc.property(terms, terms, (a, b) => {
        const both = [...a, ...b];
        if (!withinLimit(both)) return;
        const ra = rulesFor(a, false);
        const rb = rulesFor(b, false);
        const rab = rulesFor(both, false);
        const separate = costOf(ra.rules, ra.properties) + costOf(rb.rules, rb.properties);
        const together = costOf(rab.rules, rab.properties);
        expect(together - separate >= -1n && together - separate <= 1n).toBe(true);
      }),
    );
  });

  it('(6) is exact (no rounding) when every quantity is a whole number', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ credits, quantity: fc.bigInt({ min: 0n, max: 10n ** 6n }) }), { minLength: 1, maxLength: 6 }), (input) => {
        const rules: ConsumptionRule[] = input.map((t, i) => ({ event: 'use', credits: t.credits, perUnitOf: `q${i}` }));
        const properties = Object.fromEntries(input.map((t, i) => [`q${i}`, Number(t.quantity)]));
        expect(costOf(rules, properties)).toBe(input.reduce((sum, t) => sum + t.credits * t.quantity, 0n));
      }),
    );
  });
});

/** Sum of two plain decimal strings, as a plain decimal string (test-side arithmetic). */
function addDecimal(x: string, y: string): string {
  const a = fraction(x);
  const b = fraction(y);
  const scale = a.denominator > b.denominator ? a.denominator : b.denominator;
  const digits = (a.numerator * scale) / a.denominator + (b.numerator * scale) / b.denominator;
  const places = scale.toString().length - 1;
  const text = digits.toString().padStart(places + 1, '0');
  return places === 0 ? text : `${text.slice(0, text.length - places)}.${text.slice(text.length - places)}`;
}

describe('where on a numeric property', () => {
  /** Exact value of a decimal numeral with an optional sign and exponent, as n / d; independent of decimal.ts. */
  function rational(text: string): { n: bigint; d: bigint } | undefined {
    const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
    if (!match) return undefined;
    const [, sign, whole, decimals = '', exponent = '0'] = match;
    let n = BigInt(`${whole}${decimals}`) * (sign === '-' ? -1n : 1n);
    let d = 10n ** BigInt(decimals.length);
    const e = Number(exponent);
    if (e >= 0) n *= 10n ** BigInt(e);
    else d *= 10n ** BigInt(-e);
    // In lowest terms over a power of ten: how many fractional digits the value has.
    if (n === 0n) return { n, d: 1n };
    while (d > 1n && n % 10n === 0n) {
      n /= 10n;
      d /= 10n;
    }
    return { n, d };
  }

  /** The number as a producer or an operator may write it: trailing zeros, an exponent, a fixed point, scaled digits. */
  const spelling = (x: number) => {
    const text = String(x);
    const exact = rational(text)!;
    return fc.oneof(
      fc.constant(text),
      fc.integer({ min: 1, max: 6 }).map((zeros) => (text.includes('e') ? text : `${text}${text.includes('.') ? '' : '.'}${'0'.repeat(zeros)}`)),
      fc.integer({ min: 0, max: 20 }).map((digits) => x.toExponential(digits)),
      fc.integer({ min: 0, max: 20 }).map((digits) => x.toFixed(digits)),
      fc.integer({ min: 0, max: 20 }).map((shift) => `${(exact.n * 10n ** BigInt(shift)).toString()}e-${shift + exact.d.toString().length - 1}`),
    );
  };

  const value = fc.oneof(
    fc.double({ min: -1e15, max: 1e15, noNaN: true }),
    fc.integer(),
    fc.integer({ min: -1000, max: 1000 }).map((n) => n / 8),
  );

  const costOf = (where: string, p: PropertyValue) =>
    computeCost(
      { id: 'p', name: 'p', description: '', consumption: [{ event: 'e', credits: CREDIT, where: { p: where } }], lowBalanceThreshold: null, bundles: [] },
      { id: 'u', customerId: 'c', event: 'e', timestamp: 0, properties: { p } },
    );

  it('a number equals a where value iff their exact decimals are equal; a string only as typed', () => {
    fc.assert(
      fc.property(
        value.chain((x) => fc.tuple(fc.constant(x), fc.oneof(spelling(x), spelling(x + 1), fc.double({ noNaN: true }).map(String), fc.string({ maxLength: 4 })))),
        ([x, where]) => {
          const a = rational(String(x));
          const b = where.length <= 64 ? rational(where) : undefined;
          // Within the supported 40 fractional digits (and 64 characters) a numeral compares by value; else as written.
          const comparable = a !== undefined && b !== undefined && a.d <= 10n ** 40n && b.d <= 10n ** 40n;
          const equal = comparable ? a.n * b.d === b.n * a.d : String(x) === where;
          expect(costOf(where, x).matched).toBe(equal);
          expect(costOf(where, String(x)).matched).toBe(String(x) === where);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('where values read once per rule', () => {
  /**
   * The definition the per-rule reading must keep (cost.ts before it read where values once):
   * the same text; else, for a number and a filter written as a numeral as typed, the same exact decimal.
   */
  function matchesAsDefined(value: PropertyValue | undefined, expected: string): boolean {
    if (value === undefined || value === null) return false;
    if (String(value) === expected) return true;
    if (typeof value !== 'number' || expected.length === 0 || expected.trim() !== expected) return false;
    const wanted = toExactDecimal(expected);
    const actual = wanted === undefined ? undefined : toExactDecimal(value);
    if (actual === undefined || wanted === undefined) return false;
    return actual.digits * 10n ** BigInt(wanted.scale) === wanted.digits * 10n ** BigInt(actual.scale);
  }

  const beyondSafe = fc.bigInt({ min: 2n ** 53n - 3n, max: 2n ** 53n + 3n }).chain((n) => fc.constantFrom(Number(n), -Number(n)));
  const number = fc.oneof(
    fc.double(), // NaN, ±Infinity, -0, 5e-324, 1e308 among them
    fc.integer({ min: -1000, max: 1000 }),
    fc.integer({ min: -1000, max: 1000 }).map((n) => n / 8),
    fc.maxSafeInteger(),
    beyondSafe,
    fc.constantFrom(0, -0, 1e21, 2 ** 60, 1e40, 1e41, 1e-40, 1e-41, 5e-324, NaN, Infinity, -Infinity),
  );
  const value: fc.Arbitrary<PropertyValue> = fc.oneof(
    { weight: 6, arbitrary: number },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.string({ maxLength: 4 }) },
    { weight: 1, arbitrary: number.map(String) },
  );

  /** A numeral with any sign, leading or trailing zeros, point and exponent. */
  const numeral = fc
    .tuple(
      fc.constantFrom('', '-', '+'),
      fc.oneof(fc.nat({ max: 1000 }).map(String), fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String), fc.constantFrom('0', '00', '007', '9007199254740993')),
      fc.option(fc.stringMatching(/^\d{0,45}$/), { nil: undefined }),
      fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.nat({ max: 400 })), { nil: undefined }),
    )
    .map(([sign, whole, fraction, exponent]) => `${sign}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : exponent.join('')}`);
  /** Texts that look numeric to Number() but are not numerals as typed, or not numbers at all. */
  const notANumeral = fc.oneof(
    fc.constantFrom('', ' ', ' 2', '2 ', '\t1', '0x10', '0b1', '1_000', '2,5', '.5', '5.', 'NaN', 'Infinity', '-Infinity', '+Infinity', 'true', 'false', 'null', '1'.repeat(65)),
    fc.string({ maxLength: 6 }),
  );
  /** The value as a producer or an operator may write it: its own text, padded, as an exponent, fixed. */
  const spellingOf = (x: PropertyValue) =>
    typeof x !== 'number' || !Number.isFinite(x)
      ? fc.constant(String(x))
      : fc.oneof(
          fc.constant(String(x)),
          fc.nat({ max: 6 }).map((zeros) => (String(x).includes('e') ? String(x) : `${x}${Number.isInteger(x) ? '.' : ''}${'0'.repeat(zeros)}`)),
          fc.integer({ min: 0, max: 25 }).map((digits) => x.toExponential(digits)),
          fc.integer({ min: 0, max: 25 }).map((digits) => x.toFixed(digits)),
        );

  const costOf = (rules: readonly Record<string, string>[], properties: Record<string, PropertyValue>) =>
    computeCost(
      { id: 'p', name: 'p', description: '', consumption: rules.map((where) => ({ event: 'e', credits: 1n, where })), lowBalanceThreshold: null, bundles: [] },
      { id: 'u', customerId: 'c', event: 'e', timestamp: 0, properties },
    );

  it('match a property exactly when the where value, compared as defined, does', () => {
    fc.assert(
      fc.property(
        value.chain((x) => fc.tuple(fc.constant(x), fc.oneof(spellingOf(x), numeral, notANumeral, value.map(String)))),
        value,
        ([x, where], other) => {
          const matched = matchesAsDefined(x, where);
          // Two rules, as a product's tiers are: one event, then another, then the first again, so
          // a where value read at the first event answers the later ones as at the first.
          const rules = [{ p: where }, { p: `${where}0` }];
          const expected = (v: PropertyValue) => Number(matchesAsDefined(v, where)) + Number(matchesAsDefined(v, `${where}0`));
          for (const v of [x, other, x]) {
            const cost = costOf(rules, { p: v });
            expect(cost.matched ? cost.rulesMatched : 0).toBe(expected(v));
          }
          expect(costOf([{ p: where }], { p: x }).matched).toBe(matched);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
