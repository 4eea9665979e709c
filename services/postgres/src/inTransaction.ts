import type { Pool, PoolClient } from 'pg';
import { withClient } from './withClient';

/**
 * Runs `work` in one transaction on one client of the pool: committed when it resolves, rolled
 * back when it throws. `work` must not wait for another connection of the same pool while it
 * holds this one: with every connection so held, none is left to give.
 */
export function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  // Destroyed on failure (withClient's default), not returned: the connection may be
  // mid-transaction or broken.
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  });
}
