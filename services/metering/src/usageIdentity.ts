import { isUsageTextLength } from '@tally/domain';
import type { DeadLetterUsage } from './deadLetterMessage';
import { cloudEventUsageId, isStructuredCloudEvent } from './cloudEventUsage';

/** A customer id or usage event id as metering takes one (the domain's and the API's limit). */
const id = (value: unknown): value is string => typeof value === 'string' && isUsageTextLength(value);

/**
 * The customer and usage event id a record names, read as metering would read them (Tally's own
 * fields, or a CloudEvent's subject and source + id), before and whatever its validation says:
 * a usage event that fails validation is still the one its producer will ask about. Null when the
 * record names neither as an id could be (absent, not text, or too long).
 */
export function usageIdentityOf(record: unknown): DeadLetterUsage | null {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return null;
  const fields = record as Record<string, unknown>;
  if (isStructuredCloudEvent(record)) {
    const { subject, source, id: eventId } = record;
    if (!id(subject) || typeof source !== 'string' || typeof eventId !== 'string' || source.length === 0 || eventId.length === 0) return null;
    const usageEventId = cloudEventUsageId(source, eventId);
    return id(usageEventId) ? { customerId: subject, usageEventId } : null;
  }
  return id(fields.customerId) && id(fields.id) ? { customerId: fields.customerId, usageEventId: fields.id } : null;
}
