import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction on one client of the pool: committed when it resolves, rolled
 * back when it throws. `work` must not wait for another connection of the same pool while it
 * holds this one: with every connection so held, none is left to give.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no 'error' listener of the pool's: a session the server ends between
  // two statements (a restart, pg_terminate_backend) would emit one unheard and crash the process.
  // The next statement rejects anyway; the pool's 'error' event, as for an idle connection, logs it.
  const onError = (error: Error) => {
    if (pool.listenerCount('error') > 0) pool.emit('error', error, client);
  };
  client.on('error', onError);
  const release = (destroy: boolean) => {
    client.off('error', onError);
    client.release(destroy);
  };
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    release(false);
    return result;
  } catch (error) {
    // Destroyed, not returned: the connection may be mid-transaction or broken.
    release(true);
    throw error;
  }
}
