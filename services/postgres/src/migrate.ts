import type { Pool, QueryResult } from 'pg';
import type { Logger } from 'pino';
import { QUERY_TIMEOUT_MARGIN_MS } from './createPool';
import { listMigrations, type Migration } from './listMigrations';
import { queryWithTimeout } from './queryWithTimeout';
import { assertSqlIdentifier, quoteIdentifier } from './sqlIdentifier';
import { withClient } from './withClient';

interface MigrateOptions {
  readonly pool: Pool;
  /** Created when missing; every migration runs with search_path set to it alone. */
  readonly schema: string;
  readonly logger: Logger;
  readonly migrationsDir?: string;
  /**
   * Bound of each migration statement and of the wait for another process's migration, in place
   * of the pool's statement timeout (which is sized for the service's queries, not for an index
   * built on a large table). Default 10 minutes.
   */
  readonly statementTimeoutMs?: number;
}

interface MigrateResult {
  /** Names of the migrations this call applied, in order; empty when the schema was current. */
  readonly applied: string[];
}

/**
 * Applies the pending migrations to `schema`, each in its own transaction together with its
 * schema_migrations row, so a failure leaves the schema at the last complete migration.
 *
 * Several processes may start at once (the stack starts services in parallel): a session-level
 * advisory lock keyed by the schema name makes them take turns, and a latecomer finds the work
 * done. The lock is taken before CREATE SCHEMA IF NOT EXISTS, which itself is not safe against
 * a concurrent create.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const schema = assertSqlIdentifier(options.schema, 'schema');
  const logger = options.logger.child({ module: 'migrate', schema });
  const migrations = await listMigrations(options.migrationsDir);
  const timeoutMs = options.statementTimeoutMs ?? DEFAULT_MIGRATION_TIMEOUT_MS;
  // On failure withClient destroys the connection: it may be mid-transaction and still hold the
  // lock, and destroying it instead of returning it to the pool ends the session, which rolls back
  // and releases the lock.
  return withClient(options.pool, async (client) => {
    // Each query's client-side bound (pg's query_timeout) matches the server-side one set below.
    const bounded: BoundedQuery = (text, values) => queryWithTimeout(client, text, values, timeoutMs + QUERY_TIMEOUT_MARGIN_MS);
    // Session-wide until RESET below, which returns the pooled connection to the pool's timeout.
    await bounded(`SET statement_timeout = ${Math.trunc(timeoutMs)}`);
    await bounded('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    const applied = await applyPending(bounded, schema, migrations, logger);
    await bounded('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    await bounded('RESET statement_timeout');
    return { applied };
  });
}

/** First key of the two-key advisory lock space, so the lock cannot collide with other users'. */
const MIGRATION_LOCK_CLASS = 0x74616c6d; // 'talm'
const DEFAULT_MIGRATION_TIMEOUT_MS = 600_000;

type BoundedQuery = (text: string, values?: unknown[]) => Promise<QueryResult>;

async function applyPending(
  query: BoundedQuery,
  schema: string,
  migrations: readonly Migration[],
  logger: Logger,
): Promise<string[]> {
  const qualified = `${quoteIdentifier(schema)}.schema_migrations`;
  await query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
  await query(
    `CREATE TABLE IF NOT EXISTS ${qualified} (
       name text PRIMARY KEY,
       checksum text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const { rows } = (await query(`SELECT name, checksum FROM ${qualified}`)) as QueryResult<{ name: string; checksum: string }>;
  const appliedChecksums = new Map(rows.map((row) => [row.name, row.checksum]));

  const applied: string[] = [];
  for (const migration of migrations) {
    const previous = appliedChecksums.get(migration.name);
    if (previous !== undefined) {
      // Not fatal: a developer's long-lived database should keep starting after a local edit;
      // the warning says the schema may differ from the file.
      if (previous !== migration.checksum) {
        logger.warn({ migration: migration.name }, 'applied migration was edited since; the schema keeps the old version');
      }
      continue;
    }
    const started = process.hrtime.bigint();
    await query('BEGIN');
    // SET LOCAL ends with the transaction, so the pooled connection keeps its own search_path.
    await query(`SET LOCAL search_path TO ${quoteIdentifier(schema)}`);
    await query(migration.sql);
    await query(`INSERT INTO ${qualified} (name, checksum) VALUES ($1, $2)`, [migration.name, migration.checksum]);
    await query('COMMIT');
    applied.push(migration.name);
    logger.info(
      { migration: migration.name, durationMs: Number((process.hrtime.bigint() - started) / 1_000_000n) },
      'applied migration',
    );
  }
  if (applied.length === 0) logger.debug({}, 'schema is up to date');
  return applied;
}
