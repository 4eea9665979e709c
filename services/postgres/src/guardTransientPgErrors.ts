import { isTransientPgError } from './isTransientPgError';

/** Runs a store's query; what the guard made of a transient failure is thrown in its place. */
export type PgGuard = <T>(work: () => Promise<T>) => Promise<T>;

/**
 * The one mapping of PostgreSQL's transient failures (connection lost or refused, timeouts,
 * serialization failures: isTransientPgError) to a store's own "unavailable" error, retriable and
 * answered 503. Anything else passes through unchanged: a constraint or a bug is not an outage.
 */
export function guardTransientPgErrors(toUnavailable: (cause: unknown) => Error): PgGuard {
  return async (work) => {
    try {
      return await work();
    } catch (error) {
      if (isTransientPgError(error)) throw toUnavailable(error);
      throw error;
    }
  };
}
