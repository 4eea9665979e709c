import type { UsageEventAvroPropertyValue, UsageEventAvroRecord } from '@tally/schemas';

export type PlainPropertyValue = null | boolean | number | string;

/**
 * avsc keeps union values wrapped ({ long: 5 }) because the property union has two numeric
 * branches; an integral number is sent as long, any other as double.
 */
function toAvroProperty(value: PlainPropertyValue): UsageEventAvroPropertyValue {
  if (value === null) return null;
  if (typeof value === 'boolean') return { boolean: value };
  if (typeof value === 'string') return { string: value };
  return Number.isSafeInteger(value) ? { long: value } : { double: value };
}

export function toAvroUsageEvent(event: {
  id: string;
  customerId: string;
  event: string;
  timestamp: number;
  properties: Record<string, PlainPropertyValue>;
}): UsageEventAvroRecord {
  return {
    ...event,
    properties: Object.fromEntries(Object.entries(event.properties).map(([key, value]) => [key, toAvroProperty(value)])),
  };
}

/** Significant digits any decimal numeral of which a double holds exactly (IEEE 754: 15). */
const EXACT_DIGITS = 15;

/** The number a decimal numeral names, if a double holds it exactly; undefined if not. */
function exactNumber(raw: string): number | undefined {
  const value = Number(raw);
  if (!Number.isFinite(value)) return undefined;
  if (!raw.includes('.')) return Number.isSafeInteger(value) ? value : undefined;
  const digits = raw.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  if (digits.length <= EXACT_DIGITS) return value;
  // More digits than always fit: exact only if the double reads back as the same numeral.
  return String(value) === raw.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '') ? value : undefined;
}

/**
 * `--property tokens=150` → 150, `plan=pro` → "pro", `beta=true` → true, `x=null` → null, and a
 * value in double quotes the string inside them (`zip="01234"`, `flag="true"`). Never a number
 * other than the one written: a numeral with leading zeros (`zip=01234`) is the string it is, and
 * one a double cannot hold exactly (`tokens=12345678901234567890`) is refused, pointing at quotes.
 */
export function parsePropertyArgument(argument: string): [string, PlainPropertyValue] {
  const separator = argument.indexOf('=');
  if (separator <= 0) throw new Error(`--property takes key=value, got "${argument}"`);
  const key = argument.slice(0, separator);
  const raw = argument.slice(separator + 1);
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) return [key, raw.slice(1, -1)];
  if (raw === 'true' || raw === 'false') return [key, raw === 'true'];
  if (raw === 'null') return [key, null];
  if (!/^-?\d+(\.\d+)?$/.test(raw) || /^-?0\d/.test(raw)) return [key, raw];
  const value = exactNumber(raw);
  if (value === undefined) {
    throw new Error(
      `--property ${argument}: the number cannot be sent exactly (a usage event's numbers are doubles, exact to ${EXACT_DIGITS} significant digits); to send it as a string, quote it: ${key}="${raw}"`,
    );
  }
  return [key, value];
}
