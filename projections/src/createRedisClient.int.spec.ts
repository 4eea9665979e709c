import { startTcpProxyFor } from '@tally/test-support';
import { createRedisClient } from './createRedisClient';
import { TEST_REDIS_URL } from './testing/testRedis';

describe('createRedisClient', () => {
  it('fails a command Redis does not answer (a partition) after the command timeout, and works again once it answers', async () => {
    const { proxy, url } = await startTcpProxyFor(TEST_REDIS_URL);
    const redis = createRedisClient({ url, commandTimeoutMs: 300 });
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
