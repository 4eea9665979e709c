import { CREDIT_SCALE, MAX_CREDITS, Micros } from './credits';
import { ConsumptionRule, CreditProduct } from './creditProduct';
import { divideRoundHalfUp, ExactDecimal, formatExactDecimal, readExactDecimal, toExactDecimal } from './decimal';
import { InvalidUsageEventError } from './errors';
import { PropertyValue, UsageEvent } from './usageEvent';

type UsageCost =
  | { readonly matched: false }
  | {
      readonly matched: true;
      /** Σ credits × quantity over the matching rules, rounded half-up to micro-credits once, at the end. */
      readonly credits: Micros;
      /** The quantity of the first matching rule, as an exact decimal string. */
      readonly quantity: string;
      readonly rulesMatched: number;
    };

const ONE: ExactDecimal = { digits: 1n, scale: 0 };
const NOT_MATCHED: UsageCost = { matched: false };
/** 10^15 units: larger quantities are overflow attempts or unit mistakes. */
const MAX_QUANTITY = 10n ** 15n;

/** a = b, exactly: a.digits / 10^a.scale = b.digits / 10^b.scale. */
function sameDecimal(a: ExactDecimal, b: ExactDecimal): boolean {
  return a.scale === b.scale ? a.digits === b.digits : a.digits * 10n ** BigInt(b.scale) === b.digits * 10n ** BigInt(a.scale);
}

/**
 * One entry of a where filter with its numeric reading, made once per where object (whereTestsOf):
 * the filter is a product constant, and computeCost runs for every rule of every event.
 */
interface WhereTest {
  readonly key: string;
  readonly text: string;
  /**
   * The filter's exact decimal when it is written as a numeral exactly as typed; undefined when
   * not (" 2.5" or "+2.5" is a string, never equal to a number) or beyond the supported digits
   * (5e-324), when only the same text matches, as before.
   */
  readonly exact: ExactDecimal | undefined;
  /**
   * exact's value as a double when it is a whole number ("3", "3.0", "3e0", "-0"); else NaN, equal
   * to no number. Beyond 2^53 it is rounded, but then to no safe integer, so none equals it.
   */
  readonly integer: number;
  /**
   * Number(text). A number whose text or exact decimal is the filter's is this double: its text
   * round-trips, and an equal decimal parses to the same double. Any other number is unequal.
   */
  readonly double: number;
}

function whereTestOf(key: string, text: string): WhereTest {
  const exact = text.length === 0 || text.trim().length !== text.length ? undefined : toExactDecimal(text);
  let integer = NaN;
  if (exact !== undefined) {
    const unit = 10n ** BigInt(exact.scale);
    const whole = exact.digits / unit;
    if (whole * unit === exact.digits) integer = Number(whole);
  }
  return { key, text, exact, integer, double: Number(text) };
}

/**
 * A rule's where entries, read once per where object: a product and its rules are immutable
 * (readonly; creditProductFromDto freezes where), so the reading made at the first event holds
 * for every later one. A WeakMap keeps the product plain data, its DTO and wire shape unchanged,
 * and lets the reading go with the product.
 */
const whereTests = new WeakMap<Readonly<Record<string, string>>, readonly WhereTest[]>();

function whereTestsOf(where: Readonly<Record<string, string>>): readonly WhereTest[] {
  let tests = whereTests.get(where);
  if (tests === undefined) {
    // Own enumerable keys, as a for...in filtered by hasOwn read them.
    tests = Object.keys(where).map((key) => whereTestOf(key, where[key]!));
    whereTests.set(where, tests);
  }
  return tests;
}

/**
 * Whether a property has a where filter's value. A string (a long beyond 2^53 too, read as its
 * digits) compares as typed. A number compares by value with a filter written as a decimal
 * numeral: JSON's 2.50 and Avro's double 1.0 arrive as 2.5 and 1, which "2.50" and "1.0" mean.
 * The usual numbers cost no parsing, matched or not: the filter was read once (whereTestOf).
 */
function hasWhereValue(value: PropertyValue | undefined, test: WhereTest): boolean {
  if (value === undefined || value === null) return false;
  // Booleans as ever: "true" or "false".
  if (typeof value !== 'number') return String(value) === test.text;
  // A safe integer's text and exact decimal are itself: it equals the filter iff the filter's value is it.
  if (Number.isSafeInteger(value)) return value === test.integer;
  // String(NaN) is "NaN", as before; NaN is no double's equal.
  if (Number.isNaN(value)) return test.text === 'NaN';
  if (value !== test.double) return false;
  // The filter's double (rare unless they are equal): the same text, or the same exact decimal.
  if (String(value) === test.text) return true;
  const actual = test.exact === undefined ? undefined : toExactDecimal(value);
  return actual !== undefined && sameDecimal(actual, test.exact!);
}

/**
 * A property of the event itself: never an inherited member of the object (a rule reading
 * `constructor` or `toString` finds it missing, not a function).
 */
function propertyOf(usage: UsageEvent, name: string): PropertyValue | undefined {
  return Object.hasOwn(usage.properties, name) ? usage.properties[name] : undefined;
}

function ruleMatches(rule: ConsumptionRule, usage: UsageEvent): boolean {
  if (rule.event !== usage.event) return false;
  const where = rule.where;
  if (where === undefined) return true;
  for (const test of whereTestsOf(where)) {
    if (!hasWhereValue(propertyOf(usage, test.key), test)) return false;
  }
  return true;
}

function quantityOf(rule: ConsumptionRule, usage: UsageEvent): ExactDecimal {
  if (rule.perUnitOf === undefined) return ONE;
  const raw = propertyOf(usage, rule.perUnitOf);
  const quantity = typeof raw === 'number' || typeof raw === 'string' ? readExactDecimal(raw) : 'not_a_number';
  if (quantity === 'not_a_number') {
    throw new InvalidUsageEventError(`property ${rule.perUnitOf} (the quantity) is missing or not a finite number`);
  }
  if (quantity === 'more_than_40_fractional_digits') {
    throw new InvalidUsageEventError(`property ${rule.perUnitOf} (the quantity) has more than 40 fractional digits`);
  }
  if (quantity !== 'too_large' && quantity.digits < 0n) throw new InvalidUsageEventError(`property ${rule.perUnitOf} (the quantity) is negative`);
  if (quantity === 'too_large' || quantity.digits > MAX_QUANTITY * 10n ** BigInt(quantity.scale)) {
    throw new InvalidUsageEventError(`property ${rule.perUnitOf} (the quantity) is larger than 10^15`);
  }
  return quantity;
}

/**
 * The cost of one usage event for one product. Exact: every term credits × quantity is
 * summed over a common denominator before the single rounding, so three rules of 1/3 unit
 * each cost exactly what one rule of 1 unit costs.
 */
export function computeCost(product: CreditProduct, usage: UsageEvent): UsageCost {
  let first: ExactDecimal | undefined;
  let rulesMatched = 0;
  // Σ credits × quantity over the finest scale met so far: the sum is rescaled when a finer
  // quantity comes, so it ends as the sum over the common denominator 10^scale, exactly.
  let numerator = 0n;
  let scale = 0;
  for (const rule of product.consumption) {
    if (!ruleMatches(rule, usage)) continue;
    const quantity = quantityOf(rule, usage);
    if (quantity.scale > scale) {
      numerator *= 10n ** BigInt(quantity.scale - scale);
      scale = quantity.scale;
    }
    const term = rule.credits * quantity.digits;
    numerator += quantity.scale === scale ? term : term * 10n ** BigInt(scale - quantity.scale);
    first ??= quantity;
    rulesMatched += 1;
  }
  if (first === undefined) return NOT_MATCHED;
  // A whole quantity (scale 0) needs no rounding: the sum is already in micro-credits.
  const credits = scale === 0 ? numerator : divideRoundHalfUp(numerator, 10n ** BigInt(scale));
  if (credits > MAX_CREDITS) {
    throw new InvalidUsageEventError(`the cost of this event exceeds 10^15 credits (scale ${CREDIT_SCALE})`);
  }
  return { matched: true, credits, quantity: formatExactDecimal(first), rulesMatched };
}
