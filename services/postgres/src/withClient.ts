import type { Pool, PoolClient } from 'pg';

export interface WithClientOptions {
  /**
   * Called after `work` threw, with the client still held: resolves whether the client goes back
   * to the pool (true) or is destroyed (false). Without it the client is destroyed: it may be
   * mid-transaction or broken.
   */
  readonly reusableAfterFailure?: (client: PoolClient) => Promise<boolean>;
}

/**
 * Runs `work` on one client checked out of the pool, and gives it back after. A checked-out
 * client has no 'error' listener of the pool's (pg-pool removes it while the client is out): a
 * session the server ends between two statements (a restart, pg_terminate_backend) would emit one
 * unheard and crash the process. Until the client is given back, its 'error' goes to the pool's
 * 'error' event, which createPool logs as it does an idle connection's; the next statement
 * rejects anyway.
 */
export async function withClient<T>(pool: Pool, work: (client: PoolClient) => Promise<T>, options: WithClientOptions = {}): Promise<T> {
  const client = await pool.connect();
  const onError = (error: Error) => {
    if (pool.listenerCount('error') > 0) pool.emit('error', error, client);
  };
  client.on('error', onError);
  let destroy = false;
  try {
    return await work(client);
  } catch (error) {
    destroy = true;
    if (options.reusableAfterFailure !== undefined) destroy = !(await options.reusableAfterFailure(client).catch(() => false));
    throw error;
  } finally {
    // Off before the release, which puts the pool's own listener back.
    client.off('error', onError);
    client.release(destroy);
  }
}

/** Rolls the client's transaction back: resolves whether it could (one that cannot is broken). */
export function rolledBack(client: PoolClient): Promise<boolean> {
  return client.query('ROLLBACK').then(
    () => true,
    () => false,
  );
}
