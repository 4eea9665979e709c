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
 * Whether a property has a where filter's value. A string (a long beyond 2^53 too, read as its
 * digits) compares as typed. A number compares by value with a filter written as a decimal
 * numeral: JSON's 2.50 and Avro's double 1.0 arrive as 2.5 and 1, which "2.50" and "1.0" mean.
 */
function hasWhereValue(value: PropertyValue | undefined, expected: string): boolean {
  if (value === undefined || value === null) return false;
  const text = String(value);
  // The common case costs no parsing.
  if (text === expected) return true;
  if (typeof value !== 'number') return false;
  // A numeral exactly as typed: " 2.5" or "+2.5" is a string, never equal to a number.
  if (expected.length === 0 || expected.trim().length !== expected.length) return false;
  const wanted = toExactDecimal(expected);
  const actual = wanted === undefined ? undefined : toExactDecimal(value);
  // Beyond the supported digits (5e-324), only the same text matches, as before.
  return actual !== undefined && sameDecimal(actual, wanted!);
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
  // for...in over a plain object's own keys: no entries array per rule and event (the hot path).
  for (const key in where) {
    if (Object.hasOwn(where, key) && !hasWhereValue(propertyOf(usage, key), where[key]!)) return false;
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
