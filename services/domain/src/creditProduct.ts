import { formatCredits, formatNullableCredits, Micros, parseNonNegativeCredits, parsePositiveCredits } from './credits';
import { ValidationError } from './errors';
import { textLength } from './wellFormedText';

export interface ConsumptionRule {
  /** The usage event name this rule matches, e.g. `api_call`. */
  readonly event: string;
  /** Credits per event, or per unit when `perUnitOf` is set. */
  readonly credits: Micros;
  /** Property whose numeric value is the quantity; without it the quantity is 1. */
  readonly perUnitOf?: string;
  /** Every entry must equal the event's property: a string as typed, a number by value with a numeral (computeCost). */
  readonly where?: Readonly<Record<string, string>>;
}

export interface Price {
  /** Money, not credits: a decimal string in the currency's units. */
  readonly amount: string;
  /** ISO 4217 code. */
  readonly currency: string;
}

export interface Bundle {
  readonly id: string;
  readonly credits: Micros;
  readonly price: Price;
  /** Offered to the customer on the portal's purchase options; a bundle that is not can be sold only through the API. */
  readonly purchaseOption: boolean;
}

export interface CreditProduct {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly consumption: readonly ConsumptionRule[];
  readonly lowBalanceThreshold: Micros | null;
  readonly bundles: readonly Bundle[];
}

/** The product as JSON carries it (amounts as decimal strings): the catalog's stored and served form. */
export interface CreditProductDto {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly consumption: ReadonlyArray<{
    readonly event: string;
    readonly credits: string;
    readonly perUnitOf?: string;
    readonly where?: Readonly<Record<string, string>>;
  }>;
  readonly lowBalanceThreshold: string | null;
  /** `purchaseOption` absent (products stored before it existed): true, every bundle was offered. */
  readonly bundles: ReadonlyArray<{ readonly id: string; readonly credits: string; readonly price: Price; readonly purchaseOption?: boolean }>;
}

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const PRICE_AMOUNT = /^\d{1,12}(?:\.\d{1,6})?$/;
const CURRENCY = /^[A-Z]{3}$/;
/**
 * ISO 4217's codes as this Node's ICU has them (the circulating currencies; not XXX, XTS or the
 * metals), read once. A code ICU drops in a later Node only refuses new writes of it: what is stored
 * still loads (creditProductFromDto checks the shape alone).
 */
const ISO_4217 = new Set(Intl.supportedValuesOf('currency'));

export function isValidIdentifier(value: unknown): value is string {
  return typeof value === 'string' && IDENTIFIER.test(value);
}

function requireText(value: unknown, field: string, max = 256): string {
  if (typeof value !== 'string' || value.trim().length === 0 || textLength(value) > max) {
    throw new ValidationError(`${field} must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

/**
 * A stored product is read as a CreditProductDto without a schema (an older version or a hand edit
 * may have written any JSON): a part of the wrong shape is a ValidationError naming it, not a
 * TypeError, so that callers can tell a product to repair from a bug.
 */
function requireList<T>(value: readonly T[], field: string): readonly T[] {
  if (!Array.isArray(value)) throw new ValidationError(`${field} must be an array`);
  return value;
}

function requireObject<T>(value: T, field: string): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${field} must be an object`);
  return value;
}

function parsePrice(price: Price, field: string): Price {
  requireObject(price, field);
  // A number would pass the pattern (test() reads it as text) and be stored as one.
  if (typeof price.amount !== 'string' || !PRICE_AMOUNT.test(price.amount)) {
    throw new ValidationError(`${field}.amount must be a non-negative decimal string, e.g. "49.99"`);
  }
  if (typeof price.currency !== 'string' || !CURRENCY.test(price.currency)) {
    throw new ValidationError(`${field}.currency must be an ISO 4217 code such as "EUR"`);
  }
  return { amount: price.amount, currency: price.currency };
}

/** Validates a product in its JSON form and converts its amounts to exact micro-credits. */
export function creditProductFromDto(dto: CreditProductDto): CreditProduct {
  // A product's history keeps whatever JSON was stored, even no object at all.
  requireObject(dto, 'the product');
  if (!isValidIdentifier(dto.id)) {
    throw new ValidationError('id must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit');
  }
  const consumption = requireList(dto.consumption, 'consumption').map((rule, index): ConsumptionRule => {
    const field = `consumption[${index}]`;
    requireObject(rule, field);
    const where = requireObject(rule.where ?? {}, `${field}.where`);
    for (const [key, value] of Object.entries(where)) {
      if (typeof value !== 'string') throw new ValidationError(`${field}.where.${key} must be a string`);
    }
    return {
      event: requireText(rule.event, `${field}.event`),
      credits: parseNonNegativeCredits(rule.credits, `${field}.credits`),
      ...(rule.perUnitOf !== undefined ? { perUnitOf: requireText(rule.perUnitOf, `${field}.perUnitOf`) } : {}),
      // A copy of its own, frozen: computeCost reads a where's values once, at its first event.
      ...(Object.keys(where).length > 0 ? { where: Object.freeze({ ...where }) } : {}),
    };
  });
  const bundleIds = new Set<string>();
  const bundles = requireList(dto.bundles, 'bundles').map((bundle, index): Bundle => {
    const field = `bundles[${index}]`;
    requireObject(bundle, field);
    if (!isValidIdentifier(bundle.id)) throw new ValidationError(`${field}.id is not a valid identifier`);
    if (bundleIds.has(bundle.id)) throw new ValidationError(`${field}.id "${bundle.id}" is used twice`);
    bundleIds.add(bundle.id);
    if (bundle.purchaseOption !== undefined && typeof bundle.purchaseOption !== 'boolean') throw new ValidationError(`${field}.purchaseOption must be true or false`);
    return {
      id: bundle.id,
      credits: parsePositiveCredits(bundle.credits, `${field}.credits`),
      price: parsePrice(bundle.price, `${field}.price`),
      purchaseOption: bundle.purchaseOption ?? true,
    };
  });
  return {
    id: dto.id,
    name: requireText(dto.name, 'name'),
    description: typeof dto.description === 'string' ? dto.description : '',
    consumption,
    lowBalanceThreshold:
      dto.lowBalanceThreshold === null || dto.lowBalanceThreshold === undefined
        ? null
        : parseNonNegativeCredits(dto.lowBalanceThreshold, 'lowBalanceThreshold'),
    bundles,
  };
}

export function creditProductToDto(product: CreditProduct): CreditProductDto {
  return {
    id: product.id,
    name: product.name,
    description: product.description,
    consumption: product.consumption.map((rule) => ({
      event: rule.event,
      credits: formatCredits(rule.credits),
      ...(rule.perUnitOf !== undefined ? { perUnitOf: rule.perUnitOf } : {}),
      ...(rule.where !== undefined ? { where: { ...rule.where } } : {}),
    })),
    lowBalanceThreshold: formatNullableCredits(product.lowBalanceThreshold),
    bundles: product.bundles.map((bundle) => ({
      id: bundle.id,
      credits: formatCredits(bundle.credits),
      price: { ...bundle.price },
      purchaseOption: bundle.purchaseOption,
    })),
  };
}

/** A rule as compared for sameness: its filters as a set of key/values (in any order), its credits by value. */
function ruleIdentity(rule: ConsumptionRule): string {
  const where = Object.entries(rule.where ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([rule.event, rule.perUnitOf ?? null, rule.credits.toString(), where]);
}

function checkRules(rules: readonly ConsumptionRule[]): void {
  const seen = new Map<string, number>();
  rules.forEach((rule, index) => {
    if (rule.where !== undefined && Object.hasOwn(rule.where, '')) {
      throw new ValidationError(`consumption[${index}].where has a property with no name: a filter on no property matches no usage event; name the property or remove the filter`);
    }
    const identity = ruleIdentity(rule);
    const first = seen.get(identity);
    if (first !== undefined) {
      // Overlapping rules are meant (each matching one adds its credits); one repeated whole only charges twice.
      throw new ValidationError(
        `consumption[${index}] is the same rule as consumption[${first}] (same event, per unit, filters and credits): every matching rule applies, so each event would be charged twice; remove one`,
      );
    }
    seen.set(identity, index);
  });
}

function checkCurrencies(bundles: readonly Bundle[]): void {
  bundles.forEach((bundle, index) => {
    if (!ISO_4217.has(bundle.price.currency)) {
      throw new ValidationError(`bundles[${index}].price.currency "${bundle.price.currency}" is not an ISO 4217 currency code, such as "EUR"`);
    }
  });
}

/**
 * A product as a request writes it (POST, or PATCH merged into the product as stored): read as
 * creditProductFromDto reads it, and held besides to what only a write is: no filter on a property
 * with no name, no rule repeated whole, a currency ISO 4217 has. Products stored before these
 * refusals keep loading and metering as they did (reading is creditProductFromDto alone), so the
 * refusals apply to the fields the request gives (`given`; all of a new product): a rename of a
 * product stored with a repeated rule is taken, a change of its rules must mend them.
 */
export function creditProductFromRequest(dto: CreditProductDto, given: Partial<CreditProductDto> = dto): CreditProduct {
  const product = creditProductFromDto(dto);
  if (given.consumption !== undefined) checkRules(product.consumption);
  if (given.bundles !== undefined) checkCurrencies(product.bundles);
  return product;
}
