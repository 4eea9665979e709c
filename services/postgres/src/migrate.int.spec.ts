import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPool } from './createPool';
import { listMigrations } from './listMigrations';
import { migrate } from './migrate';
import { quoteIdentifier } from './sqlIdentifier';

const logger = pino({ level: 'silent' });

describe('migrate', () => {
  let scratch: TestSchema;

  beforeAll(async () => {
    // Only its pool and connection string are used: each test migrates a schema of its own.
    scratch = await createTestSchema({ prefix: 'migrate_host' });
  });

  afterAll(async () => {
    await scratch.drop();
  });

  async function withFreshSchema(name: string, test: (schema: string) => Promise<void>): Promise<void> {
    const schema = `${scratch.schema}_${name}`;
    try {
      await test(schema);
    } finally {
      await scratch.pool.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
    }
  }

  it('creates the schema, applies every migration once, and applies nothing the second time', async () => {
    await withFreshSchema('twice', async (schema) => {
      const all = (await listMigrations()).map((m) => m.name);
      expect(all[0]).toBe('001_event_store');

      expect(await migrate({ pool: scratch.pool, schema, logger })).toEqual({ applied: all });
      expect(await migrate({ pool: scratch.pool, schema, logger })).toEqual({ applied: [] });

      const { rows } = await scratch.pool.query<{ name: string }>(
        `SELECT name FROM ${quoteIdentifier(schema)}.schema_migrations ORDER BY name`,
      );
      expect(rows.map((r) => r.name)).toEqual(all);
    });
  });

  it('lets concurrent starters take turns: each migration is applied exactly once', async () => {
    await withFreshSchema('race', async (schema) => {
      const results = await Promise.all(Array.from({ length: 5 }, () => migrate({ pool: scratch.pool, schema, logger })));
      const applied = results.flatMap((r) => r.applied);
      expect(applied.sort()).toEqual((await listMigrations()).map((m) => m.name).sort());
    });
  });

  it('creates the event store objects in the target schema only', async () => {
    await withFreshSchema('placement', async (schema) => {
      await migrate({ pool: scratch.pool, schema, logger });
      const { rows } = await scratch.pool.query<{ schema: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname IN ('events', 'streams', 'events_position_seq', 'schema_migrations')
           AND n.nspname IN ($1, 'public')`,
        [schema],
      );
      expect(rows.map((r) => r.schema)).toEqual(Array(4).fill(schema));
    });
  });

  it('leaves a failed migration unrecorded and the schema at the last complete one', async () => {
    await withFreshSchema('failure', async (schema) => {
      const dir = await mkdtemp(path.join(tmpdir(), 'tally-migrations-'));
      try {
        await writeFile(path.join(dir, '001_ok.sql'), 'CREATE TABLE ok (id int);');
        await writeFile(path.join(dir, '002_broken.sql'), 'CREATE TABLE half (id int); SELECT no_such_function();');
        await expect(migrate({ pool: scratch.pool, schema, logger, migrationsDir: dir })).rejects.toThrow(/no_such_function/);
        const { rows } = await scratch.pool.query<{ name: string }>(
          `SELECT name FROM ${quoteIdentifier(schema)}.schema_migrations`,
        );
        expect(rows.map((r) => r.name)).toEqual(['001_ok']);
        const half = await scratch.pool.query(`SELECT to_regclass($1) AS table`, [`${schema}.half`]);
        expect(half.rows[0].table).toBeNull();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('createPool', () => {
  it('gives every connection the schema as its search_path', async () => {
    const scratch = await createTestSchema({ prefix: 'pool_path' });
    const pool = createPool({ connectionString: scratch.connectionString, applicationName: 'pool-test', schema: scratch.schema, max: 2 });
    try {
      const { rows } = await pool.query<{ path: string; app: string }>(
        "SELECT current_setting('search_path') AS path, current_setting('application_name') AS app",
      );
      expect(rows[0]).toEqual({ path: scratch.schema, app: 'pool-test' });
      expect((await pool.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(0);
    } finally {
      await pool.end();
      await scratch.drop();
    }
  });
});
