import { createTestSchema, type TestSchema, waitFor } from '@tally/test-support';
import { inTransaction } from './inTransaction';

describe('inTransaction', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'in_transaction', max: 1 });
    await db.pool.query('CREATE TABLE kept (id int PRIMARY KEY)');
  });

  afterAll(async () => {
    await db?.drop();
  });

  const kept = async () => (await db.pool.query<{ id: number }>('SELECT id FROM kept ORDER BY id')).rows.map(({ id }) => id);

  it('commits what the work did and answers its result', async () => {
    expect(await inTransaction(db.pool, async (client) => (await client.query('INSERT INTO kept VALUES (1) RETURNING id')).rows[0].id)).toBe(1);
    expect(await kept()).toEqual([1]);
  });

  it('keeps nothing of work that throws, and gives the pool its connection back usable', async () => {
    const failure = new Error('work failed');
    await expect(
      inTransaction(db.pool, async (client) => {
        await client.query('INSERT INTO kept VALUES (2)');
        throw failure;
      }),
    ).rejects.toBe(failure);
    // A pool of one: this query gets a connection, and not one left inside the failed transaction.
    expect(await kept()).toEqual([1]);
    expect((await db.pool.query<{ open: boolean }>("SELECT now() = statement_timestamp() AS open")).rows[0]!.open).toBe(true);
  });

  it('rejects, and raises no uncaught error, when the server ends the session while the work is between statements', async () => {
    const other = db.anotherPool(1);
    const heard: unknown[] = [];
    const hear = (error: Error) => heard.push(error);
    db.pool.on('error', hear);
    await expect(
      inTransaction(db.pool, async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // 'end' comes after the client has reported the failure ('error'), as it does between statements.
        let ended = false;
        client.once('end', () => (ended = true));
        await other.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await waitFor(() => ended, { description: 'the client to see its session end', timeoutMs: 5_000, intervalMs: 10 });
        await client.query('INSERT INTO kept VALUES (3)');
      }),
    ).rejects.toThrow();
    db.pool.off('error', hear);
    // Heard, not swallowed: the pool's 'error' event (createPool logs it) had the session's end.
    expect(heard).toContainEqual(expect.objectContaining({ code: '57P01' })); // admin_shutdown
    // The pool (of one) opens a new connection for the next query.
    expect(await kept()).toEqual([1]);
  });
});
