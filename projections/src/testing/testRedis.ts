import { randomUUID } from 'node:crypto';
import { Redis, RedisOptions } from 'ioredis';

export const TEST_REDIS_URL = process.env.TALLY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Test-only: a key prefix of its own on the shared Redis, and the clients that use it. Other
 * test files use the same Redis at the same time, so a test never flushes it: `deleteAll`
 * deletes this prefix's keys, which is what FLUSHALL does as far as the projection can tell.
 */
export interface TestRedis {
  readonly keyPrefix: string;
  /** A new connection (closed by close()). */
  connect(options?: RedisOptions): Redis;
  /** Every key under the prefix. */
  keys(): Promise<string[]>;
  deleteAll(): Promise<void>;
  close(): Promise<void>;
}

export function createTestRedis(name: string): TestRedis {
  const keyPrefix = `tally-test:${name}:${randomUUID()}`;
  const clients: Redis[] = [];
  const url = new URL(TEST_REDIS_URL);
  const connect = (options: RedisOptions = {}) => {
    // Options after the URL's, so a test can point a client elsewhere (e.g. at a proxy).
    const client = new Redis({ host: url.hostname, port: Number(url.port || 6379), ...options });
    clients.push(client);
    return client;
  };
  const admin = connect();
  const keys = async () => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found;
  };
  const deleteAll = async () => {
    const found = await keys();
    for (let start = 0; start < found.length; start += 1000) await admin.unlink(...found.slice(start, start + 1000));
  };
  return {
    keyPrefix,
    connect,
    keys,
    deleteAll,
    async close() {
      await deleteAll();
      // A client a test disconnected itself is left alone: disconnecting it again arms a
      // 2-second timer that nothing clears, and jest would wait for it.
      const open = clients.filter((client) => client.status !== 'end');
      await Promise.all(open.map((client) => client.quit().catch(() => client.disconnect())));
    },
  };
}
