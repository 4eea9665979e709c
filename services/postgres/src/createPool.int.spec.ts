import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { createTestSchema, stackConfig, startTcpProxyFor, type TestSchema } from '@tally/test-support';
import { createPool } from './createPool';
import { isTransientPgError } from './isTransientPgError';

const logger = pino({ level: 'silent' });
const run = promisify(execFile);

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

/**
 * A child process under a zone with a pre-1900 local mean time (Paris: +00:09:21): jest's own
 * process keeps the zone it started with. The child loads createPool.ts from source through swc,
 * as jest does, sends Dates through a pool and prints what came back.
 */
const CHILD = `
const swc = require('@swc/core');
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformFileSync(filename, { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } });
  module._compile(code, filename);
};
const pino = require('pino');
const { createPool } = require(process.env.CREATE_POOL);
(async () => {
  const pool = createPool({ connectionString: process.env.DATABASE_URL, applicationName: 'pool-time-zone', logger: pino({ level: 'silent' }) });
  try {
    const sent = JSON.parse(process.env.SENT).map((iso) => new Date(iso));
    const { rows } = await pool.query('SELECT unnest($1::timestamptz[]) AS at, $2::timestamptz AS one', [sent, sent[0]]);
    console.log(JSON.stringify({ offset: sent[0].getTimezoneOffset(), array: rows.map((row) => row.at.toISOString()), one: rows[0].one.toISOString() }));
  } finally {
    await pool.end();
  }
})().catch((error) => { console.error(error); process.exit(1); });
`;

describe('createPool under a time zone other than UTC', () => {
  it('sends Dates as the instants they are, before 1900 too (local mean time has seconds an offset cannot say)', async () => {
    const sent = ['1800-01-01T00:00:00.000Z', '0026-03-01T00:00:00.000Z', '2026-03-29T01:30:00.000Z'];
    const { stdout } = await run(process.execPath, ['-e', CHILD], {
      cwd: path.resolve(__dirname, '..', '..', '..'),
      env: {
        ...process.env,
        TZ: 'Europe/Paris',
        CREATE_POOL: path.join(__dirname, 'createPool.ts'),
        DATABASE_URL: stackConfig.testDatabaseUrl,
        SENT: JSON.stringify(sent),
      },
    });
    const answer = JSON.parse(stdout) as { offset: number; array: string[]; one: string };
    // The child really runs in Paris's zone, where 1800 is 9 minutes 21 seconds east of UTC.
    expect(answer.offset).not.toBe(0);
    expect(answer).toEqual({ offset: answer.offset, array: sent, one: sent[0] });
  });
});
