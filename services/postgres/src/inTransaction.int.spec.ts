import { createTestSchema, type TestSchema } from '@tally/test-support';
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
});
