import { startTcpProxy } from '@tally/test-support';
import { createRedisClient } from './createRedisClient';
import { TEST_REDIS_URL } from './testing/testRedis';

describe('createRedisClient', () => {
  it('fails a command Redis does not answer (a partition) after the command timeout, and works again once it answers', async () => {
    const url = new URL(TEST_REDIS_URL);
    const proxy = await startTcpProxy(Number(url.port || 6379), url.hostname);
    const redis = createRedisClient({ url: `redis://127.0.0.1:${proxy.port}`, commandTimeoutMs: 300 });
    redis.on('error', () => undefined);
    try {
      expect(await redis.ping()).toBe('PONG');
      proxy.stall();
      await expect(redis.ping()).rejects.toThrow(/Command timed out/);
      // Also while cut off entirely: a command queued for a reconnection is bounded the same way.
      proxy.down();
      await expect(redis.ping()).rejects.toThrow(/Command timed out/);
      proxy.resume();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });
});
