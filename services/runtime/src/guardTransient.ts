/** Runs a store's call; what the guard made of a transient failure is thrown in its place. */
type TransientGuard = <T>(work: () => Promise<T>) => Promise<T>;

/**
 * The one mapping of a dependency's transient failures (PostgreSQL's isTransientPgError, a Redis
 * client's own errors) to a store's "unavailable" error: retriable, answered 503. Anything else
 * passes through unchanged, since a constraint or a bug is not an outage.
 */
export function guardTransient(isTransient: (error: unknown) => boolean, toUnavailable: (cause: unknown) => Error): TransientGuard {
  return async (work) => {
    try {
      return await work();
    } catch (error) {
      if (isTransient(error)) throw toUnavailable(error);
      throw error;
    }
  };
}
