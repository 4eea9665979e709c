import { InvalidInstantError, ValidationError } from '@tally/domain';
import { requestInstant } from './requestInstant';

/**
 * Every time the API is given (ledger and consumption ranges, a redrive's since, a subscription's
 * start, a hold's expiresAt) is read here. The schema's `format: 'date-time'` already refuses a
 * time without a zone or off the calendar; these are the spellings it admits that name no one
 * instant, or not the one Date would read.
 */
describe('requestInstant', () => {
  it('is undefined when absent, and the instant named when given', () => {
    expect(requestInstant(undefined, 'from')).toBeUndefined();
    expect(requestInstant('2026-03-01T13:00:00+01:00', 'from')).toEqual(new Date(Date.UTC(2026, 2, 1, 12)));
    expect(requestInstant('2026-03-01T12:00:00.250999Z', 'from')).toEqual(new Date(Date.UTC(2026, 2, 1, 12, 0, 0, 250)));
  });

  it.each([
    ['a space for the T (Date reads it, in V8 only)', '2026-03-01 12:00:00Z', /^from must be ISO-8601 with a zone/],
    ['an offset of hours alone', '2026-03-01T12:00:00+05', /^from must be ISO-8601 with a zone/],
    ['no zone', '2026-03-01T12:00:00', /^from must be ISO-8601 with a zone/],
    ['30 February', '2027-02-30T00:00:00Z', /^from "2027-02-30T00:00:00Z" is not a date and time on the calendar/],
    ['hour 24', '2026-03-01T24:00:00Z', /is not a date and time on the calendar/],
    ['a leap second', '2026-12-31T23:59:60Z', /is not a date and time on the calendar/],
  ])('refuses %s with a ValidationError naming the field', (_what, text, message) => {
    expect(() => requestInstant(text, 'from')).toThrow(InvalidInstantError);
    expect(() => requestInstant(text, 'from')).toThrow(ValidationError);
    expect(() => requestInstant(text, 'from')).toThrow(message);
  });
});
