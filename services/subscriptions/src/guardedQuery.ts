import { guardTransientPgErrors } from '@tally/postgres';
import { SubscriptionsUnavailableError } from './subscriptionErrors';

/** Connection failures become SubscriptionsUnavailableError (retriable); anything else passes through. */
export const guardedQuery = guardTransientPgErrors((cause) => new SubscriptionsUnavailableError('the subscriptions database is unavailable', { cause }));

export const UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === UNIQUE_VIOLATION;
}
