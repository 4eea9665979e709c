import { startTcpProxyFor, uniqueName, waitFor } from '@tally/test-support';
import { createRedisClient } from './createRedisClient';
import { TEST_REDIS_URL } from './testing/testRedis';

describe('createRedisClient', () => {
  it('fails a command Redis does not answer (a partition) after the command timeout, and works again once it answers', async () => {
    const { proxy, url } = await startTcpProxyFor(TEST_REDIS_URL);
    const redis = createRedisClient({ url, commandTimeoutMs: 300 });
    redis.on('error', () => undefined);
    try {
      // The first command waits for the connection through the proxy, which on a loaded CI host can
      // take longer than the 300 ms command timeout by itself: a PONG within a deadline, as below.
      expect(await waitFor(() => redis.ping(), { description: 'a first PONG through the proxy', timeoutMs: 10_000 })).toBe('PONG');
      proxy.stall();
      await expect(redis.ping()).rejects.toThrow(/Command timed out/);
      // Also while cut off entirely: a command queued for a reconnection is bounded the same way.
      proxy.down();
      await expect(redis.ping()).rejects.toThrow(/Command timed out/);
      proxy.resume();
      // The client reconnects on its own backoff, which can outlast one 300 ms command under load:
      // a ping within a deadline, not the first one, shows it works again.
      expect(await waitFor(() => redis.ping(), { description: 'a PONG once Redis answers again', timeoutMs: 10_000 })).toBe('PONG');
    } finally {
      redis.disconnect();
      await proxy.close();
    }
  });

  it('leaves no timer running once closed, so a process that is done can exit', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const before = timers();
    const redis = createRedisClient({ url: TEST_REDIS_URL });
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();
    // The count is the process's: a timer of an earlier test's client may come and go meanwhile.
    // A timer this client left would be a command timeout's (5 s), still there at 2 s.
    await waitFor(() => timers() <= before, { description: `at most ${before} timers once closed`, timeoutMs: 2_000, intervalMs: 20 });
  });

  it('with enableAutoPipelining, sends the commands of one tick as one pipeline, each answered to its own caller', async () => {
    const key = uniqueName('autopipeline');
    const redis = createRedisClient({ url: TEST_REDIS_URL, enableAutoPipelining: true });
    const plain = createRedisClient({ url: TEST_REDIS_URL });
    try {
      await Promise.all([redis.ping(), plain.ping()]);
      await redis.hset(key, { balance: '42', name: 'n' });
      const reads = [redis.hgetall(key), redis.hget(key, 'balance'), redis.exists(`${key}:none`)];
      // Queued for one write at the end of the tick, rather than written one by one.
      expect(redis.autoPipelineQueueSize).toBe(reads.length);
      const plainRead = plain.hget(key, 'balance');
      expect(plain.autoPipelineQueueSize).toBe(0);
      expect(await Promise.all(reads)).toEqual([{ balance: '42', name: 'n' }, '42', 0]);
      expect(await plainRead).toBe('42');
    } finally {
      await redis.del(key);
      redis.disconnect();
      plain.disconnect();
    }
  });
});
