import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction on one client of the pool: committed when it resolves, rolled
 * back when it throws. `work` must not wait for another connection of the same pool while it
 * holds this one: with every connection so held, none is left to give.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    // Destroyed, not returned: the connection may be mid-transaction or broken.
    client.release(true);
    throw error;
  }
}
