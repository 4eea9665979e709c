import pg from 'pg';
import pino, { type Logger } from 'pino';
import { assertSqlIdentifier } from './sqlIdentifier';

export interface CreatePoolOptions {
  readonly connectionString: string;
  readonly max?: number;
  readonly applicationName: string;
  /** Every connection gets `search_path=<schema>`, so unqualified names resolve only there. */
  readonly schema?: string;
  /** Without a bound, a connect to an unreachable host would hang its caller indefinitely. */
  readonly connectionTimeoutMillis?: number;
  readonly idleTimeoutMillis?: number;
  readonly logger?: Logger;
}

export function createPool(options: CreatePoolOptions): pg.Pool {
  const logger = (options.logger ?? pino({ name: 'tally' })).child({ module: 'postgres-pool' });
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 10_000,
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
  // the next query opens a new one, so logging is all that is left to do.
  pool.on('error', (error) => {
    logger.warn({ err: error }, 'idle PostgreSQL connection failed; it was discarded');
  });
  return pool;
}
