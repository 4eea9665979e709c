import { ValidationError } from '@tally/domain';

/**
 * A date-time from a querystring or a body, or undefined when absent. The schema's
 * `format: 'date-time'` admits what `Date` may still refuse (a leap second `23:59:60Z`, an offset
 * without minutes `+05`), which is a 400 here, never an Invalid Date further on.
 */
export function requestInstant(text: string | undefined, field: string): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new ValidationError(`${field} must be a date-time, e.g. 2026-03-01T00:00:00Z`);
  return date;
}
