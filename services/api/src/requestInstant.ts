import { isoInstantOf } from '@tally/domain';

/**
 * A date-time from a querystring or a body, or undefined when absent: read by the domain's one
 * strict reading (isoInstantOf), as usage events and the command line are. The schema's
 * `format: 'date-time'` already refuses a time without a zone or off the calendar, but admits
 * spellings Date would misread or refuse (a leap second `23:59:60Z`, an offset without minutes
 * `+05`, a space for the T): each is a 400 naming the field, never an Invalid Date further on.
 */
export function requestInstant(text: string | undefined, field: string): Date | undefined {
  return text === undefined ? undefined : new Date(isoInstantOf(text, field));
}
