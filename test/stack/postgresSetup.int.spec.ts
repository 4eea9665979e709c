/**
 * What `stack.sh up` does to PostgreSQL's databases (scripts/lib/postgres.sh): creates them even
 * when another checkout does so at the same moment, and migrates `tally`, building the migrations'
 * command when it is not built, or stopping, with the reason, when it cannot.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stackConfig } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');

function bash(script: string, cwd: string, env: Readonly<Record<string, string>>) {
  const result = spawnSync('bash', ['-c', `set -euo pipefail; source scripts/lib/env.sh; source scripts/lib/common.sh; source scripts/lib/postgres.sh; ${script}`], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, output: result.stdout + result.stderr };
}

describe('the stack script and PostgreSQL', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tally-pg-setup-'));
    mkdirSync(path.join(dir, '.tally', 'logs'), { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes a database another checkout created between its look and its CREATE DATABASE', () => {
    // The look finds nothing once, as when the other checkout's CREATE DATABASE commits just after it.
    const result = bash(
      `psql() {
         # A file, not a variable: each look runs in a subshell of its own.
         if [[ ! -e "$TALLY_HOME/looked" && "$*" == *"SELECT oid FROM pg_database"* ]]; then touch "$TALLY_HOME/looked"; return 0; fi
         command psql "$@"
       }
       postgres_ensure_databases
       echo "oid=$PG_DATABASE_OID"`,
      ROOT,
      { TALLY_HOME: path.join(dir, '.tally'), TALLY_DATABASE_URL: stackConfig.testDatabaseUrl, TALLY_TEST_DATABASE_URL: stackConfig.testDatabaseUrl },
    );
    expect(result.code).toBe(0);
    expect(result.output).toMatch(/oid=\d+/);
  });

  describe('migrating, in a checkout of its own', () => {
    const log = () => (existsSync(path.join(dir, 'calls.log')) ? readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n') : []);
    beforeEach(() => {
      for (const file of ['scripts/lib/env.sh', 'scripts/lib/common.sh', 'scripts/lib/postgres.sh']) {
        mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        copyFileSync(path.join(ROOT, file), path.join(dir, file));
      }
      mkdirSync(path.join(dir, 'infra', 'postgres', 'migrations'), { recursive: true });
      writeFileSync(path.join(dir, 'infra', 'postgres', 'migrations', '001_first.sql'), 'SELECT 1;\n');
    });
    const migrate = () => bash('PG_DATABASE_OID=1; postgres_migrate', dir, { TALLY_HOME: path.join(dir, '.tally'), TALLY_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/tally_migrate_test' });

    it('stops, naming what is missing, when the migrations cannot be built', () => {
      const result = migrate();
      expect(result.code).toBe(1);
      expect(result.output).toContain(`${path.join(dir, 'services', 'postgres', 'dist', 'migrateCli.js')} is not built`);
      expect(result.output).not.toContain('migrations skipped');
    });

    it('builds the migrations when they are not built, then migrates', () => {
      // A tsc that "builds" the migrations' command, which records that it ran.
      mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
      const cli = path.join(dir, 'services', 'postgres', 'dist', 'migrateCli.js');
      writeFileSync(
        path.join(dir, 'node_modules', '.bin', 'tsc'),
        `#!/usr/bin/env bash\necho "tsc $*" >>'${dir}/calls.log'\nmkdir -p '${path.dirname(cli)}'\necho "require('node:fs').appendFileSync('${dir}/calls.log', 'migrated\\\\n')" >'${cli}'\n`,
      );
      chmodSync(path.join(dir, 'node_modules', '.bin', 'tsc'), 0o755);
      const result = migrate();
      expect(result).toMatchObject({ code: 0 });
      expect(log()).toEqual([`tsc -b ${path.join(dir, 'services', 'postgres')}`, 'migrated']);
    });
  });
});
