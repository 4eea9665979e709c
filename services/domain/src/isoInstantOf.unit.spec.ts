import fc from 'fast-check';
import { InvalidInstantError, ValidationError } from './errors';
import { isoInstantOf } from './isoInstantOf';

const MARCH_1 = Date.UTC(2026, 2, 1, 12);

/** Written out here, not from Date: Date.UTC reads years 0-99 as 1900-1999 (year 0 is a leap year, 1900 is not). */
function daysIn(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
}

const pad = (value: number, width = 2) => String(value).padStart(width, '0');

/** A date-time the parser accepts, in any of its spellings: seconds and fraction optional, any case, offset with or without a colon. */
const validInstant = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    dayFraction: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.option(fc.record({ value: fc.integer({ min: 0, max: 59 }), fraction: fc.option(fc.stringMatching(/^\d{1,9}$/), { nil: undefined }) }), { nil: undefined }),
    zone: fc.oneof(
      fc.constantFrom('Z', 'z'),
      fc.record({ sign: fc.constantFrom('+', '-'), hours: fc.integer({ min: 0, max: 23 }), minutes: fc.integer({ min: 0, max: 59 }), colon: fc.boolean() }),
    ),
    separator: fc.constantFrom('T', 't'),
  })
  .map(({ year, month, dayFraction, hour, minute, second, zone, separator }) => {
    const day = 1 + Math.floor(dayFraction * daysIn(year, month));
    const seconds = second === undefined ? '' : `:${pad(second.value)}${second.fraction === undefined ? '' : `.${second.fraction}`}`;
    const offset = typeof zone === 'string' ? zone : `${zone.sign}${pad(zone.hours)}${zone.colon ? ':' : ''}${pad(zone.minutes)}`;
    return `${pad(year, 4)}-${pad(month)}-${pad(day)}${separator}${pad(hour)}:${pad(minute)}${seconds}${offset}`;
  });

describe('isoInstantOf', () => {
  it('reads a date-time with a zone as the instant it names', () => {
    expect(isoInstantOf('2026-03-01T12:00:00Z', 'at')).toBe(MARCH_1);
    expect(isoInstantOf('2026-03-01T13:00:00+01:00', 'at')).toBe(MARCH_1);
    expect(isoInstantOf('2026-03-01T13:00:00+0100', 'at')).toBe(MARCH_1);
    expect(isoInstantOf('2026-03-01t12:00z', 'at')).toBe(MARCH_1);
    expect(isoInstantOf('2026-03-01T12:00:00.250999Z', 'at')).toBe(MARCH_1 + 250);
    expect(isoInstantOf('2028-02-29T12:00:00Z', 'at')).toBe(Date.UTC(2028, 1, 29, 12));
  });

  it('equals Date.parse of the same text for every date-time it accepts', () => {
    fc.assert(
      fc.property(validInstant, (text) => {
        expect(isoInstantOf(text, 'at')).toBe(Date.parse(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses every day past the end of its month, which Date.parse would roll over into the next', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 99 }), (year, month, day) => {
        fc.pre(day === 0 || day > daysIn(year, month));
        const text = `${pad(year, 4)}-${pad(month)}-${pad(day)}T00:00:00Z`;
        expect(() => isoInstantOf(text, 'at')).toThrow(InvalidInstantError);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['30 February', '2027-02-30T00:00:00Z'],
    ['29 February of a common year', '2026-02-29T12:00:00Z'],
    ['month 13', '2026-13-01T00:00:00Z'],
    ['hour 24', '2026-03-01T24:00:00Z'],
    ['minute 60', '2026-03-01T12:60:00Z'],
    ['a leap second', '2026-12-31T23:59:60Z'],
    ['an offset of 24 hours', '2026-03-01T12:00:00+24:00'],
  ])('refuses %s as not on the calendar, naming the field', (_what, text) => {
    expect(() => isoInstantOf(text, 'expiresAt')).toThrow(InvalidInstantError);
    expect(() => isoInstantOf(text, 'expiresAt')).toThrow(/^expiresAt ".*" is not a date and time on the calendar$/);
  });

  it.each([
    // Date.parse reads these in the host's own zone: a different instant on each host, and on replay.
    ['without a zone', '2026-03-01T12:00:00'],
    ['without a zone, with milliseconds', '2026-03-01T12:00:00.250'],
    ['with an offset of hours alone', '2026-03-01T12:00:00+05'],
    ['with a space for the T', '2026-03-01 12:00:00Z'],
    ['a date alone', '2026-03-01'],
    ['followed by more text', '2026-03-01T12:00:00Z and then some'],
    ['free text', 'tomorrow'],
    ['empty', ''],
  ])('refuses a text %s, saying a zone is needed', (_what, text) => {
    expect(() => isoInstantOf(text, 'since')).toThrow(InvalidInstantError);
    expect(() => isoInstantOf(text, 'since')).toThrow(/^since must be ISO-8601 with a zone, e.g. 2026-03-01T12:00:00Z/);
  });

  it('throws a ValidationError: input that no retry can make valid', () => {
    const refusal = (() => {
      try {
        return isoInstantOf('2026-03-01T12:00:00', 'at');
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(ValidationError);
    expect(refusal).toMatchObject({ code: 'validation_failed', retriable: false });
  });
});
