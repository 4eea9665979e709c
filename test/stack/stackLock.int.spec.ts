/**
 * scripts/stack.sh's lock (`$TALLY_HOME/stack.lock`, fd 9): one `up` or `down` at a time per
 * TALLY_HOME. A daemon that `up` starts must not inherit it, or every later `up`, `down`,
 * `npm test` and `npm start` waits for that daemon to exit; and a wait for it is bounded and says
 * who holds it. Each test has its own TALLY_HOME and, for Redis, a server of its own on a free port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');

function bash(script: string, env: Readonly<Record<string, string>>, timeoutMs = 60_000) {
  const result = spawnSync('bash', ['-c', script], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: timeoutMs });
  return { code: result.status, output: result.stdout + result.stderr };
}

/** Whether nothing holds the lock now: `flock -n` takes it at once or fails. */
const lockIsFree = (lock: string) => spawnSync('flock', ['-n', lock, 'true']).status === 0;

describe("the stack scripts' lock", () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'tally-stack-lock-'));
    mkdirSync(path.join(home, 'logs'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('is not kept by a Redis that redis_up started while holding it', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const lock = path.join(home, 'stack.lock');
    try {
      // As stack.sh up takes the lock and starts Redis; the log and pid file go to this test's
      // folder (the machine's Redis keeps its own), the start itself is redis_up's.
      const started = bash(
        `set -euo pipefail
         source scripts/lib/env.sh; source scripts/lib/common.sh; source scripts/lib/redis.sh
         REDIS_LOG="$TALLY_HOME/redis.log"
         redis-server() { command redis-server "$@" --pidfile "$TALLY_HOME/redis.pid"; }
         exec 9>"$TALLY_HOME/stack.lock"; flock 9
         redis_up`,
        { TALLY_HOME: home, TALLY_REDIS_URL: url },
      );
      expect(started).toMatchObject({ code: 0 });
      expect(spawnSync('redis-cli', ['-u', url, 'ping'], { encoding: 'utf8' }).stdout.trim()).toBe('PONG');
      expect(lockIsFree(lock)).toBe(true);
    } finally {
      spawnSync('redis-cli', ['-u', url, 'shutdown', 'nosave']);
    }
  });

  it('is waited for at most TALLY_STACK_TIMEOUT_SECONDS, naming what holds it', async () => {
    const lock = path.join(home, 'stack.lock');
    // A process holding the lock for longer than the test: what a daemon that inherited it does.
    const holder = spawn('flock', [lock, 'sleep', '120'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(lockIsFree(lock)).toBe(false);
      const startedAt = Date.now();
      const down = bash('bash scripts/stack.sh down', { TALLY_HOME: home, TALLY_STACK_TIMEOUT_SECONDS: '2' }, 20_000);
      expect(down.code).toBe(1);
      expect(Date.now() - startedAt).toBeLessThan(15_000);
      expect(down.output).toContain(`${lock} is still held after 2s`);
      expect(down.output).toMatch(/sleep 120/);
    } finally {
      holder.kill();
    }
  });

  it('is taken at once when free, and released when the command ends', () => {
    const down = bash('bash scripts/stack.sh down', { TALLY_HOME: home, TALLY_STACK_TIMEOUT_SECONDS: '2' });
    expect(down).toMatchObject({ code: 0 });
    expect(lockIsFree(path.join(home, 'stack.lock'))).toBe(true);
  });
});
