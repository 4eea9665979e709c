import pino from 'pino';
import { createTestSchema, stackConfig, startTcpProxyFor, type TestSchema } from '@tally/test-support';
import { createPool } from './createPool';
import { isTransientPgError } from './isTransientPgError';

const logger = pino({ level: 'silent' });

describe('createPool bounds every wait', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'create_pool' });
  });

  afterAll(async () => {
    await db.drop();
  });

  it('gives every connection a statement timeout: PostgreSQL cancels a statement that runs longer, as a transient error', async () => {
    const pool = createPool({ connectionString: stackConfig.testDatabaseUrl, applicationName: 'pool-statement-timeout', statementTimeoutMillis: 300, logger });
    try {
      const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
      expect(rows[0]!.statement_timeout).toBe('300ms');
      const error = await pool.query('SELECT pg_sleep(5)').then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect((error as { code?: string }).code).toBe('57014');
      expect(isTransientPgError(error)).toBe(true);
      // The pool is still usable afterwards.
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('gives up on a query the server never answers (a partition) a little after the statement timeout', async () => {
    const { proxy, url } = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    const pool = createPool({ connectionString: url, applicationName: 'pool-partition', statementTimeoutMillis: 300, logger });
    try {
      await pool.query('SELECT 1');
      proxy.stall();
      const error = await pool.query('SELECT 1').then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect((error as Error).message).toMatch(/Query read timeout/);
      expect(isTransientPgError(error)).toBe(true);
    } finally {
      proxy.resume();
      await pool.end();
      await proxy.close();
    }
  });

  it('gives up on a connection that is never accepted within the connection timeout', async () => {
    const { proxy, url } = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    proxy.stall();
    const pool = createPool({ connectionString: url, applicationName: 'pool-connect', connectionTimeoutMillis: 300, logger });
    try {
      const error = await pool.query('SELECT 1').then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect((error as Error).message).toMatch(/timeout/i);
      expect(isTransientPgError(error)).toBe(true);
    } finally {
      proxy.resume();
      await pool.end();
      await proxy.close();
    }
  });
});
