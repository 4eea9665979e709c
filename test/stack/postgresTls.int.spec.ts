/**
 * scripts/lib/postgres.sh's postgres_ensure_tls, which `stack.sh up` runs: TLS turned on in a
 * PostgreSQL of this machine, and only there. Each test runs a scratch cluster of its own
 * (initdb in a temporary folder, on a free port), never the machine's; a server in a container
 * is one whose data directory this machine does not see, made here with a mount namespace.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');
const PG_BIN = path.join('/usr/lib/postgresql', readdirSync('/usr/lib/postgresql').sort().at(-1)!, 'bin');
const POSTGRES_USER = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
const POSTGRES_GROUP = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());

interface ScratchCluster {
  readonly url: string;
  /** The data directory as the server names it (`SHOW data_directory`). */
  readonly dataDirectory: string;
  psql(sql: string, env?: Readonly<Record<string, string>>): { code: number | null; output: string };
  restart(): { code: number | null; output: string };
  stop(): void;
}

/**
 * A cluster on a free port. `inContainer`: its server runs in a mount namespace where its data
 * directory is mounted at a path that is an empty folder on this machine, as a container's is.
 */
async function startScratchCluster(inContainer: boolean): Promise<ScratchCluster> {
  const base = mkdtempSync(path.join(tmpdir(), 'tally-pg-tls-'));
  chownSync(base, POSTGRES_USER, POSTGRES_GROUP);
  const data = path.join(base, 'data');
  const served = inContainer ? path.join(base, 'container-data') : data;
  const asPostgres = (args: string[]) => spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8', timeout: 60_000 });
  const initdb = asPostgres([path.join(PG_BIN, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
  if (initdb.status !== 0) throw new Error(`initdb failed: ${initdb.stderr}`);
  const port = await freePort();
  const pgCtl = (action: string, dir: string) =>
    [path.join(PG_BIN, 'pg_ctl'), '-D', dir, '-l', path.join(base, 'server.log'), '-w', '-m', 'fast', '-o', `-p ${port} -k ${base} -c listen_addresses=127.0.0.1`, action];
  const serverCommand = (action: string) => {
    if (!inContainer) return asPostgres(pgCtl(action, data));
    mkdirSync(served, { recursive: true });
    chownSync(served, POSTGRES_USER, POSTGRES_GROUP);
    const command = ['runuser', '-u', 'postgres', '--', ...pgCtl(action, served)].map((word) => `'${word}'`).join(' ');
    return spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind '${data}' '${served}' && exec ${command}`], { encoding: 'utf8', timeout: 60_000 });
  };
  const started = serverCommand('start');
  if (started.status !== 0) throw new Error(`the scratch cluster did not start: ${started.stdout}${started.stderr}`);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const psql = (sql: string, env: Readonly<Record<string, string>> = {}) => {
    const result = spawnSync('psql', [url, '-XtAqc', sql], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: result.status, output: (result.stdout + result.stderr).trim() };
  };
  return {
    url,
    dataDirectory: served,
    psql,
    restart: () => {
      // Stopped from this machine (the pid file is the same file); started again the way it was.
      asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', data, '-w', '-m', 'fast', 'stop']);
      const again = serverCommand('start');
      return { code: again.status, output: again.stdout + again.stderr };
    },
    stop: () => {
      asPostgres([path.join(PG_BIN, 'pg_ctl'), '-D', data, '-w', '-m', 'immediate', 'stop']);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

function ensureTls(cluster: ScratchCluster) {
  const home = mkdtempSync(path.join(tmpdir(), 'tally-home-'));
  try {
    mkdirSync(path.join(home, 'logs'));
    const result = spawnSync(
      'bash',
      ['-c', 'set -euo pipefail; source scripts/lib/env.sh; source scripts/lib/common.sh; source scripts/lib/postgres.sh; postgres_ensure_tls'],
      { cwd: ROOT, env: { ...process.env, TALLY_HOME: home, TALLY_DATABASE_URL: cluster.url, TALLY_POSTGRES_TLS: 'on' }, encoding: 'utf8', timeout: 60_000 },
    );
    return { code: result.status, output: result.stdout + result.stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Whether a connection that demands TLS gets it: the server really serves TLS, not just `ssl = on`. */
const servesTls = (cluster: ScratchCluster) => cluster.psql('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', { PGSSLMODE: 'require' }).output === 't';
/** The TLS settings ALTER SYSTEM left in postgresql.auto.conf. */
const tlsSettings = (cluster: ScratchCluster) => cluster.psql("SELECT string_agg(name, ',' ORDER BY name) FROM pg_file_settings WHERE name LIKE 'ssl%' AND sourcefile LIKE '%postgresql.auto.conf'").output;

describe('postgres_ensure_tls', () => {
  jest.setTimeout(120_000);
  let cluster: ScratchCluster | undefined;
  afterEach(() => {
    cluster?.stop();
    cluster = undefined;
  });

  it("turns TLS on in this machine's own server, and a client that demands it gets it", async () => {
    cluster = await startScratchCluster(false);
    expect(servesTls(cluster)).toBe(false);
    expect(ensureTls(cluster)).toMatchObject({ code: 0 });
    expect(servesTls(cluster)).toBe(true);
    expect(cluster.restart()).toMatchObject({ code: 0 });
    expect(servesTls(cluster)).toBe(true);
  });

  it("leaves alone a server whose data directory is not on this machine (a container's)", async () => {
    cluster = await startScratchCluster(true);
    const result = ensureTls(cluster);
    expect(result.code).toBe(0);
    expect(result.output).toContain(`TLS left off: its data directory ${cluster.dataDirectory} is not on this machine`);
    expect(existsSync(path.join(cluster.dataDirectory, 'tally-tls'))).toBe(false);
    expect(tlsSettings(cluster)).toBe('');
    expect(cluster.restart()).toMatchObject({ code: 0 });
  });

  it('undoes its own TLS settings that a server could not load (an older stack.sh on a container), so it restarts', async () => {
    cluster = await startScratchCluster(true);
    const files = path.join(cluster.dataDirectory, 'tally-tls');
    cluster.psql(`ALTER SYSTEM SET ssl_cert_file = '${files}/server.crt'`);
    cluster.psql(`ALTER SYSTEM SET ssl_key_file = '${files}/server.key'`);
    cluster.psql('ALTER SYSTEM SET ssl = on');
    cluster.psql('SELECT pg_reload_conf()');
    expect(cluster.psql('SHOW ssl').output).toBe('on');
    const result = ensureTls(cluster);
    expect(result.code).toBe(0);
    expect(result.output).toContain('does not serve TLS');
    expect(tlsSettings(cluster)).toBe('');
    expect(cluster.restart()).toMatchObject({ code: 0 });
  });

  it('takes its settings back when the server cannot use the certificate, and says so', async () => {
    cluster = await startScratchCluster(false);
    // A certificate and key the server refuses: what a broken or foreign tally-tls folder holds.
    const files = path.join(cluster.dataDirectory, 'tally-tls');
    mkdirSync(files, { mode: 0o700 });
    writeFileSync(path.join(files, 'server.crt'), 'not a certificate\n');
    writeFileSync(path.join(files, 'server.key'), 'not a key\n', { mode: 0o600 });
    execFileSync('chown', ['-R', 'postgres:postgres', files]);
    const result = ensureTls(cluster);
    expect(result.code).toBe(0);
    expect(result.output).toContain('TLS left off');
    expect(servesTls(cluster)).toBe(false);
    expect(tlsSettings(cluster)).toBe('');
    expect(cluster.restart()).toMatchObject({ code: 0 });
  });
});
