import { InvalidInstantError } from './errors';

/** Date, time (seconds and their fraction optional) and zone: Z, ±hh:mm or ±hhmm. */
const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:Z|([+-])(\d{2}):?(\d{2}))$/i;

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/**
 * The instant, in epoch milliseconds, an ISO-8601 date-time from outside Tally names: the one
 * reading of every time Tally is given (usage events, API bodies and querystrings, the command
 * line). Date.parse alone would read one without a zone in the host's own zone (a different
 * instant on each host, and on replay) and roll an impossible one over (30 February as 2 March,
 * 24:00 as the next day): both are refused with an InvalidInstantError whose message begins with
 * `field`. Digits of the fraction beyond milliseconds are cut, as Date.parse cuts them.
 *
 * Only for new input: times already stored in the ledger are read as they were when stored.
 */
export function isoInstantOf(text: string, field: string): number {
  const match = ISO_INSTANT.exec(text);
  if (match === null) {
    throw new InvalidInstantError(`${field} must be ISO-8601 with a zone, e.g. 2026-03-01T12:00:00Z (without one it would be each host's local time)`);
  }
  // Groups that did not take part are undefined: the defaults stand for them.
  const [, year = '', month = '', day = '', hour = '', minute = '', second = '00', fraction = '', sign, offsetHours = '00', offsetMinutes = '00'] = match;
  const monthNumber = Number(month);
  const daysInMonth = monthNumber === 2 ? (isLeapYear(Number(year)) ? 29 : 28) : [4, 6, 9, 11].includes(monthNumber) ? 30 : 31;
  const real =
    monthNumber >= 1 && monthNumber <= 12 && Number(day) >= 1 && Number(day) <= daysInMonth && Number(hour) <= 23 && Number(minute) <= 59 && Number(second) <= 59;
  if (!real || (sign !== undefined && (Number(offsetHours) > 23 || Number(offsetMinutes) > 59))) {
    throw new InvalidInstantError(`${field} ${JSON.stringify(text.slice(0, 64))} is not a date and time on the calendar`);
  }
  // Rewritten in the one form ECMAScript defines Date.parse for, which it then reads exactly.
  const zone = sign === undefined ? 'Z' : `${sign}${offsetHours}:${offsetMinutes}`;
  return Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${second}.${fraction.padEnd(3, '0').slice(0, 3)}${zone}`);
}
