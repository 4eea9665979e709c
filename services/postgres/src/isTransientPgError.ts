/**
 * Whether an error from `pg` means "PostgreSQL could not be reached or went away" (or a
 * concurrency abort), so the same operation can succeed when retried later. Anything else (a
 * constraint, a syntax error, bad input) will fail the same way again.
 */
const TRANSIENT_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

const TRANSIENT_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovering)
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  // statement_timeout (createPool sets one on every connection): a slow or blocked server, not a
  // bad statement. Treating it as permanent would dead-letter good usage while PostgreSQL is slow.
  '57014', // query_canceled
  '55P03', // lock_not_available (lock_timeout)
]);

// pg reports some connection losses only by message, without a code.
const TRANSIENT_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'the database system is starting up',
  'the database system is shutting down',
  // The client-side query timeout (createPool's query_timeout): the server did not answer at all.
  'Query read timeout',
];

// Duck-typed, not `instanceof Error`: errors raised by node's own sockets come from another
// realm than the caller's under jest's VM context, and instanceof would miss them.
export function isTransientPgError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, errors } = error as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string') {
    if (TRANSIENT_SYSTEM_CODES.has(code) || TRANSIENT_SQLSTATES.has(code)) return true;
    // Class 08: connection exceptions.
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  // An AggregateError: a host name that resolves to several addresses, each refused.
  if (Array.isArray(errors) && errors.some(isTransientPgError)) return true;
  return typeof message === 'string' && TRANSIENT_MESSAGES.some((text) => message.includes(text));
}

/** Whether an insert failed on a unique constraint (23505): the row is there already. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}
