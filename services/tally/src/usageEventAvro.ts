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

/** `--property tokens=150` → 150, `plan=pro` → "pro", `beta=true` → true, `x=null` → null. */
export function parsePropertyArgument(argument: string): [string, PlainPropertyValue] {
  const separator = argument.indexOf('=');
  if (separator <= 0) throw new Error(`--property takes key=value, got "${argument}"`);
  const key = argument.slice(0, separator);
  const raw = argument.slice(separator + 1);
  if (raw === 'true' || raw === 'false') return [key, raw === 'true'];
  if (raw === 'null') return [key, null];
  if (/^-?\d+(\.\d+)?$/.test(raw) && Number.isFinite(Number(raw))) return [key, Number(raw)];
  return [key, raw];
}
