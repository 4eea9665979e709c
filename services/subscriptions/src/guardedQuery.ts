import { isTransientPgError } from '@tally/postgres';
import { guardTransient } from '@tally/runtime';
import { SubscriptionsUnavailableError } from './subscriptionErrors';

/** Connection failures become SubscriptionsUnavailableError (retriable); anything else passes through. */
export const guardedQuery = guardTransient(isTransientPgError, (cause) => new SubscriptionsUnavailableError('the subscriptions database is unavailable', { cause }));
