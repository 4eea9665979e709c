import { spawn } from 'node:child_process';
import { createTestSchema, stackConfig, TALLY_CLI, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
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
});
