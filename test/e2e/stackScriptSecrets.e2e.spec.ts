import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestSchema, stackConfig, type TestSchema } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');
/** Unencoded, as an operator may set it: enough for the status lines, which only pg_isready and redis-cli read. */
const ODD_PASSWORD = 's3cr@t/pw?x';
/** What the migrations' client, a URL parser, takes. */
const PASSWORD = 's3cret%2Fpw';

/** `url` with `password` written in. */
const withPassword = (url: string, password = PASSWORD) => url.replace('://postgres@', `://postgres:${password}@`).replace('redis://', `redis://:${password}@`);

async function bash(script: string, env: Readonly<Record<string, string>>): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout: string; stderr: string };
    return { code: failed.code ?? -1, output: failed.stdout + failed.stderr };
  }
}

/** What the stack scripts print and keep about PostgreSQL and Redis: never their passwords. */
describe('the stack scripts and the services\' passwords', () => {
  const home = mkdtempSync(path.join(tmpdir(), 'tally-home-'));
  let db: TestSchema;

  beforeAll(async () => {
    mkdirSync(path.join(home, 'logs'));
    db = await createTestSchema({ prefix: 'stack_secrets' });
  });
  afterAll(async () => {
    await db?.drop();
    rmSync(home, { recursive: true, force: true });
  });

  it('shows the URLs in the status lines with the password as ***', async () => {
    const status = await bash('bash scripts/stack.sh status', {
      TALLY_HOME: home,
      TALLY_DATABASE_URL: withPassword(stackConfig.databaseUrl, ODD_PASSWORD),
      TALLY_REDIS_URL: withPassword(stackConfig.redisUrl, ODD_PASSWORD),
    });
    const line = (service: string) => status.output.split('\n').find((candidate) => candidate.startsWith(`${service} `));
    expect(line('postgres')).toContain(withPassword(stackConfig.databaseUrl, '***'));
    expect(line('redis')).toContain(withPassword(stackConfig.redisUrl, '***'));
    expect(status.output).not.toContain('s3cr');
  });

  it('keeps no password in the migrations stamp, which still spares a second run', async () => {
    const migrate = () =>
      bash('source scripts/lib/env.sh && source scripts/lib/common.sh && source scripts/lib/postgres.sh && PG_DATABASE_OID=1 && postgres_migrate', {
        TALLY_HOME: home,
        TALLY_DATABASE_URL: withPassword(stackConfig.testDatabaseUrl),
        TALLY_DATABASE_SCHEMA: db.schema,
      });
    const first = await migrate();
    expect(first).toEqual({ code: 0, output: expect.stringContaining('postgres: migrating') });
    const stamp = readFileSync(path.join(home, 'postgres-migrations.stamp'), 'utf8');
    expect(stamp).toContain(`${withPassword(stackConfig.testDatabaseUrl, '***')} ${db.schema} `);
    expect(stamp).not.toContain('s3cr');
    // The stamp's purpose: nothing changed, so node is not started again.
    expect(await migrate()).toEqual({ code: 0, output: '' });
  });
});
