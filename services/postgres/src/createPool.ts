import pg from 'pg';
import pino, { type Logger } from 'pino';
import { assertSqlIdentifier } from './sqlIdentifier';

interface CreatePoolOptions {
  readonly connectionString: string;
  readonly max?: number;
  readonly applicationName: string;
  /** Every connection gets `search_path=<schema>`, so unqualified names resolve only there. */
  readonly schema?: string;
  /** Without a bound, a connect to an unreachable host would hang its caller indefinitely. */
  readonly connectionTimeoutMillis?: number;
  readonly idleTimeoutMillis?: number;
  /**
   * Server-side `statement_timeout` of every connection (default 30 s): PostgreSQL cancels a
   * statement that runs, or waits on a lock, longer than this. The client also gives up on a
   * query it has heard nothing of for this long plus QUERY_TIMEOUT_MARGIN_MS (pg's
   * `query_timeout`), which is what bounds a query when the server cannot be reached at all and
   * so cannot cancel anything; `pool.query` then discards that connection.
   */
  readonly statementTimeoutMillis?: number;
  readonly logger?: Logger;
}

const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;
/** How much longer than the server's statement timeout the client waits: the server's cancel wins when it can speak. */
export const QUERY_TIMEOUT_MARGIN_MS = 2_000;

export function createPool(options: CreatePoolOptions): pg.Pool {
  const logger = (options.logger ?? pino({ name: 'tally' })).child({ module: 'postgres-pool' });
  const statementTimeoutMillis = options.statementTimeoutMillis ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  if (!Number.isInteger(statementTimeoutMillis) || statementTimeoutMillis < 1) {
    throw new RangeError(`statementTimeoutMillis must be a positive integer; got ${statementTimeoutMillis}`);
  }
  // pg writes a Date parameter in the process's local zone by default, with an offset in whole
  // minutes: on a host whose zone had a local mean time (Paris before 1911: +00:09:21) an early
  // Date arrives seconds off. As UTC it is the instant itself, whatever the host's zone. pg keeps
  // the setting process-wide; every Date Tally sends goes to a timestamptz, so only those early
  // instants change.
  pg.defaults.parseInputDatesAsUTC = true;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? DEFAULT_CONNECTION_TIMEOUT_MS,
    statement_timeout: statementTimeoutMillis,
    query_timeout: statementTimeoutMillis + QUERY_TIMEOUT_MARGIN_MS,
    idleTimeoutMillis: options.idleTimeoutMillis ?? 30_000,
    keepAlive: true,
    // Set at connection start-up rather than by a query after connecting, so no statement can
    // ever run on a connection whose search_path is not yet the schema.
    ...(options.schema !== undefined
      ? { options: `-c search_path=${assertSqlIdentifier(options.schema, 'schema')}` }
      : {}),
  });
  // An idle connection that the server drops (restart, admin shutdown) emits 'error' on the
  // pool; unhandled, that event would crash the process. The pool discards the connection and
  // the next query opens a new one, so logging is all that is left to do. withClient forwards
  // here the failure of a connection it holds between statements (its next statement rejects).
  pool.on('error', (error) => {
    logger.warn({ err: error }, 'PostgreSQL connection failed; it is discarded');
  });
  return pool;
}
