import { isTransientPgError } from '@tally/postgres';
import { SubscriptionsUnavailableError } from './subscriptionErrors';

/** Connection failures become SubscriptionsUnavailableError (retriable); anything else passes through. */
export async function guardedQuery<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isTransientPgError(error)) throw new SubscriptionsUnavailableError('the subscriptions database is unavailable', { cause: error });
    throw error;
  }
}

export const UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === UNIQUE_VIOLATION;
}
