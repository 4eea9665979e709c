import { spawn } from 'node:child_process';
import { BALANCE_FOLD_VERSION } from '@tally/domain';
import { createKeySpace } from '@tally/projections';
import { createTestSchema, runTallyCommand, stackConfig, TALLY_CLI, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import { Redis } from 'ioredis';

jest.setTimeout(120_000);

/** `tally replay` as an operator runs it, interrupted with Ctrl-C, or by a dropped SSH session (SIGHUP). */
describe('tally replay', () => {
  let db: TestSchema;
  let redis: Redis;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'replay_command' });
    redis = new Redis(stackConfig.redisUrl);
  });

  afterAll(async () => {
    redis?.disconnect();
    await db?.drop();
  });

  it.each([
    ['Ctrl-C', 'SIGINT'],
    ['a dropped SSH session', 'SIGHUP'],
  ] as const)('stopped by %s (%s), exits 1 saying so and leaves no generation it was building in Redis', async (_, signal) => {
    const keyPrefix = uniqueName(`replay_${signal.toLowerCase()}`);
    // The replay's first read of the event store waits on this lock: the command is past
    // installing its Ctrl-C handler, and the signal lands while a rebuild is under way.
    const locker = await db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE');
      const child = spawn(process.execPath, [TALLY_CLI, 'replay', '--batch-size', '10'], {
        env: { ...process.env, TALLY_DATABASE_URL: db.connectionString, TALLY_DATABASE_SCHEMA: db.schema, TALLY_REDIS_KEY_PREFIX: keyPrefix },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
      await waitFor(
        async () => {
          const { rows } = await db.pool.query<{ waiting: number }>(
            // This schema's table, named in the query: not another test's command waiting elsewhere.
            "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE application_name = 'tally-cli' AND wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%event_log%' AND pid IN (SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'event_log'::regclass)",
          );
          return rows[0]!.waiting > 0;
        },
        { description: 'the replay waiting for its first read' },
      );
      expect(await redis.keys(`${keyPrefix}*`)).not.toEqual([]);
      child.kill(signal);
      await locker.query('ROLLBACK');
      expect(await exited).toBe(1);
      expect(stderr).toContain('interrupted; the generation being built was deleted');
      expect(await redis.keys(`${keyPrefix}*`)).toEqual([]);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
  });

  /** `tally replay`'s environment: this test's schema, and a key prefix of its own. */
  const env = (keyPrefix: string) => ({ TALLY_DATABASE_URL: db.connectionString, TALLY_DATABASE_SCHEMA: db.schema, TALLY_REDIS_KEY_PREFIX: keyPrefix });

  /** Redis keys whose name starts with the prefix, sorted. */
  const keysOf = async (prefix: string) => (await redis.keys(`${prefix}*`)).sort();

  it('exits 2, naming the head and the checkpoint, rather than replace balances projected further than its event store; replaces them when told to', async () => {
    const keyPrefix = uniqueName('replay_behind');
    // Balances projected from another store up to position 1000000; this schema's store is empty.
    await redis.mset(`${keyPrefix}:active`, 'gfromanotherstore', `${keyPrefix}:gfromanotherstore:checkpoint`, '1000000', `${keyPrefix}:gfromanotherstore:version`, String(BALANCE_FOLD_VERSION));
    try {
      const before = await keysOf(keyPrefix);
      const refused = await runTallyCommand(['replay'], env(keyPrefix));
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("the event store's head is at position 0, below the live generation's checkpoint, 1000000");
      expect(refused.stderr).toContain('--replace-ahead-projection');
      expect(refused.stdout).not.toContain('replayed');
      expect(await keysOf(keyPrefix)).toEqual(before);

      const replaced = await runTallyCommand(['replay', '--replace-ahead-projection'], env(keyPrefix));
      expect(replaced).toMatchObject({ code: 0, stdout: expect.stringContaining('(replaced gfromanotherstore)') });
      expect(await redis.get(`${keyPrefix}:active`)).not.toBe('gfromanotherstore');
      expect(await keysOf(`${keyPrefix}:gfromanotherstore:`)).toEqual([]);
    } finally {
      const left = await redis.keys(`${keyPrefix}*`);
      if (left.length > 0) await redis.unlink(...left);
    }
  });

  it('killed (SIGKILL) mid-build, leaves its generation recorded as being built, and a replay after its heartbeat went stale deletes it', async () => {
    const keyPrefix = uniqueName('replay_sigkill');
    const locker = await db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE');
      const child = spawn(process.execPath, [TALLY_CLI, 'replay', '--batch-size', '10'], { env: { ...process.env, ...env(keyPrefix) }, stdio: 'ignore' });
      const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
      // Recorded as being built before it reads: killed then, its cleanup never runs.
      const { building } = createKeySpace(keyPrefix);
      await waitFor(async () => (await redis.zcard(building)) === 1, { description: 'the replay recording the generation it builds' });
      const [killed] = await redis.zrange(building, 0, -1);
      await waitFor(async () => (await keysOf(`${keyPrefix}:${killed}:`)).length > 0, { description: 'the replay creating its generation' });
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      await locker.query('ROLLBACK');
      expect(await keysOf(`${keyPrefix}:${killed}:`)).not.toEqual([]);

      // A minute on, its heartbeat long stopped (scored by Redis's clock: 0 is before any).
      await redis.zadd(building, 0, killed!);
      const next = await runTallyCommand(['replay'], env(keyPrefix));
      expect(next.code).toBe(0);
      expect(await keysOf(`${keyPrefix}:${killed}:`)).toEqual([]);
      expect(await redis.exists(building)).toBe(0);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      const left = await redis.keys(`${keyPrefix}*`);
      if (left.length > 0) await redis.unlink(...left);
    }
  });
});
