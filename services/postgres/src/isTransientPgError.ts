/**
 * Whether an error from `pg` means "PostgreSQL could not be reached, went away or cannot do its
 * part now" (a failover, a full disk, a concurrency abort), so the same operation can succeed when
 * retried later. Anything else (a constraint, a syntax error, bad input) will fail the same way
 * again. Its callers retry what it allows (the consumer, for as long as it takes) and answer it
 * 503 (the stores' "unavailable" errors), so a server-side condition must count here: as
 * permanent, the consumer dead-letters every usage event it meets.
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
  '57P05', // idle_session_timeout: the server closed an idle session; a new one works
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  // The statement's outcome is unknown (the connection broke at its commit): trying again is what
  // finds out, and every write Tally retries is idempotent (deterministic ids, expected revisions).
  '40003', // statement_completion_unknown
  // A write reaching a node that is read-only: what a client still connected to the demoted
  // primary meets during a failover, until its connections move to the new primary.
  '25006', // read_only_sql_transaction
  // Class 53 but 53400 (configuration_limit_exceeded, which the same statement meets again): the
  // server is short of connections, disk or memory, which an operator or the load fixes. As
  // permanent, a full disk would dead-letter every usage event until it is freed.
  '53000', // insufficient_resources
  '53100', // disk_full
  '53200', // out_of_memory
  '53300', // too_many_connections
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
    // Class 08: connection exceptions. Class 58: the server's own system or I/O errors (a
    // failing disk, a file it cannot read), not the statement's.
    if (/^(08|58)[0-9A-Z]{3}$/.test(code)) return true;
  }
  // An AggregateError: a host name that resolves to several addresses, each refused.
  if (Array.isArray(errors) && errors.some(isTransientPgError)) return true;
  return typeof message === 'string' && TRANSIENT_MESSAGES.some((text) => message.includes(text));
}

/** Whether an insert failed on a unique constraint (23505): the row is there already. */
export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}
