import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { createPool, DEFAULT_MIGRATIONS_DIR, migrate, quoteIdentifier, selectMigrationFiles } from '@tally/postgres';

export interface TestSchema {
  /** A pool whose search_path is the new schema, migrated to the latest version. */
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly connectionString: string;
  /**
   * Another pool on the same schema, as a second process of Tally would have one (ended by
   * drop()): for tests of what holds across processes.
   */
  anotherPool(max?: number): pg.Pool;
  /**
   * Applies what infra/postgres/migrations has beyond the schema's version, as a deployment's
   * upgrade does (after a schema created from migrationsBefore); answers the migrations applied.
   */
  upgrade(): Promise<string[]>;
  /** Drops the schema and everything in it, and ends the pools. */
  drop(): Promise<void>;
}

export const TEST_DATABASE_URL = process.env.TALLY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tally_test';

/**
 * A fresh, migrated schema in the test database for one test file, so integration tests run in
 * parallel without seeing each other's rows. The database itself is created on first use.
 */
export async function createTestSchema({
  prefix,
  max = 10,
  migrationsDir,
}: {
  prefix: string;
  max?: number;
  /** Migrate from this folder instead of infra/postgres/migrations (a test of a migration's own upgrade). */
  migrationsDir?: string;
}): Promise<TestSchema> {
  const schema = `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  quoteIdentifier(schema);
  await ensureDatabase(TEST_DATABASE_URL);
  const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
  const pool = createPool({ connectionString: TEST_DATABASE_URL, max, applicationName: `test-${prefix}`, schema, logger });
  try {
    await migrate({ pool, schema, logger, ...(migrationsDir !== undefined ? { migrationsDir } : {}) });
  } catch (error) {
    await pool.end();
    throw error;
  }
  const others: pg.Pool[] = [];
  return {
    pool,
    schema,
    connectionString: TEST_DATABASE_URL,
    anotherPool(otherMax = max) {
      const other = createPool({ connectionString: TEST_DATABASE_URL, max: otherMax, applicationName: `test-${prefix}-${others.length + 2}`, schema, logger });
      others.push(other);
      return other;
    },
    async upgrade() {
      return (await migrate({ pool, schema, logger })).applied;
    },
    async drop() {
      await Promise.all(others.splice(0).map((other) => other.end()));
      try {
        await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
      } finally {
        await pool.end();
      }
    },
  };
}

export interface MigrationsFolder {
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * A folder holding the migrations numbered below `version`: a schema created from it
 * (createTestSchema's migrationsDir) stands as a deployment did before that migration, for a test
 * of the migration's upgrade (migrate it again without migrationsDir). remove() deletes the folder.
 */
export async function migrationsBefore(version: number): Promise<MigrationsFolder> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tally-migrations-'));
  for (const migration of selectMigrationFiles(await readdir(DEFAULT_MIGRATIONS_DIR))) {
    if (migration.version < version) await cp(path.join(DEFAULT_MIGRATIONS_DIR, migration.file), path.join(dir, migration.file));
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A real pool of a PostgreSQL nobody listens on (port 1): every query fails at once with
 * ECONNREFUSED, as it does while the server is down. End it after use.
 */
export function createUnreachablePool(applicationName: string): pg.Pool {
  return createPool({
    connectionString: 'postgres://postgres@127.0.0.1:1/tally_test',
    applicationName,
    connectionTimeoutMillis: 2_000,
    logger: pino({ level: 'silent' }),
  });
}

async function ensureDatabase(connectionString: string): Promise<void> {
  const probe = new pg.Client({ connectionString });
  try {
    await probe.connect();
    return;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw error; // 3D000: database does not exist
  } finally {
    await probe.end().catch(() => undefined);
  }
  const url = new URL(connectionString);
  const database = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${quoteIdentifier(database)}`);
  } catch (error) {
    // Another test file created it first: 42P04 duplicate_database, or 23505 when both inserted
    // into pg_database at the same moment.
    const code = (error as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw error;
  } finally {
    await admin.end();
  }
}
