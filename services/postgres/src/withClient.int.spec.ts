import type { PoolClient } from 'pg';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { rolledBack, withClient } from './withClient';

describe('withClient', () => {
  let db: TestSchema;

  beforeAll(async () => {
    // A pool of one: the next checkout gets the same session back, or a new one if it was destroyed.
    db = await createTestSchema({ prefix: 'with_client', max: 1 });
  });

  afterAll(async () => {
    await db?.drop();
  });

  const backendPid = async (client: PoolClient) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

  it('gives the client back after the work, without the error listener it held it with', async () => {
    let held: PoolClient | undefined;
    let listenersWhileHeld = 0;
    const pid = await withClient(db.pool, async (client) => {
      held = client;
      listenersWhileHeld = client.listenerCount('error');
      return backendPid(client);
    });
    expect(listenersWhileHeld).toBe(1);
    // Idle in the pool, it has the pool's listener alone again.
    expect(held!.listenerCount('error')).toBe(1);
    expect(await withClient(db.pool, backendPid)).toBe(pid);
  });

  it('destroys the client after a failure, unless it is said to be reusable, and removes its listener either way', async () => {
    const failure = new Error('work failed');
    let held: PoolClient | undefined;
    let pid = 0;
    const failing = async (client: PoolClient) => {
      held = client;
      await client.query('BEGIN');
      pid = await backendPid(client);
      throw failure;
    };
    await expect(withClient(db.pool, failing)).rejects.toBe(failure);
    // pg-pool's own listener, put back by the release even on a client it destroys; ours is gone.
    expect(held!.listenerCount('error')).toBe(1);
    expect(await withClient(db.pool, backendPid)).not.toBe(pid);

    await expect(withClient(db.pool, failing, { reusableAfterFailure: rolledBack })).rejects.toBe(failure);
    expect(held!.listenerCount('error')).toBe(1);
    const reused = await withClient(db.pool, async (client) => ({
      pid: await backendPid(client),
      open: (await client.query<{ open: boolean }>('SELECT now() = statement_timestamp() AS open')).rows[0]!.open,
    }));
    // The same session, out of the failed transaction.
    expect(reused).toEqual({ pid, open: true });
  });
});
