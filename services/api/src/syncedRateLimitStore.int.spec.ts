import type { FastifyRateLimitStore } from '@fastify/rate-limit';
import { createRedisClient } from '@tally/projections';
import { stackConfig, uniqueName, waitFor } from '@tally/test-support';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { RATE_LIMIT_REDIS_CLIENT } from './accessGuard';
import { createSyncedRateLimitStore, type SyncedRateLimitStoreOptions } from './syncedRateLimitStore';

const logger = pino({ level: 'silent' });
const HOUR = 3_600_000;

/** The plugin calls incr with a callback; these stores answer it before returning. */
function count(store: FastifyRateLimitStore, key: string, timeWindow = HOUR): { current: number; ttl: number } {
  let answer: { current: number; ttl: number } | undefined;
  (store.incr as (key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number, max: number) => void)(
    key,
    (error, result) => {
      if (error !== null || result === undefined) throw error ?? new Error('no result');
      answer = result;
    },
    timeWindow,
    10,
  );
  if (answer === undefined) throw new Error('incr did not answer before returning');
  return answer;
}

describe('createSyncedRateLimitStore, against Redis', () => {
  const keyPrefix = `${uniqueName('ratesync')}:`;
  let redis: Redis;
  const closers: (() => Promise<void>)[] = [];

  const storeOf = (options: Partial<SyncedRateLimitStoreOptions> = {}) => {
    const synced = createSyncedRateLimitStore({ redis, keyPrefix, syncMs: HOUR, windowMs: HOUR, logger, ...options });
    closers.push(() => synced.close());
    return { synced, store: new synced.Store({}) };
  };

  beforeAll(async () => {
    redis = createRedisClient({ url: stackConfig.redisUrl, ...RATE_LIMIT_REDIS_CLIENT });
    await waitFor(() => redis.status === 'ready', { description: 'redis ready', timeoutMs: 5000 });
  });

  afterAll(async () => {
    for (const close of closers.splice(0)) await close();
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
    redis.disconnect();
  });

  it('counts each request in the process at once, and adds the counts to Redis in a sync with the window started', async () => {
    const { synced, store } = storeOf();
    expect([1, 2, 3].map(() => count(store, 'key:a').current)).toEqual([1, 2, 3]);
    expect(await redis.get(`${keyPrefix}key:a`)).toBeNull();
    await synced.sync();
    expect(await redis.get(`${keyPrefix}key:a`)).toBe('3');
    const ttl = await redis.pttl(`${keyPrefix}key:a`);
    expect(ttl).toBeGreaterThan(HOUR - 60_000);
    expect(ttl).toBeLessThanOrEqual(HOUR);
    // Nothing counted since: a sync sends nothing.
    await synced.sync();
    expect(await redis.get(`${keyPrefix}key:a`)).toBe('3');
    expect(count(store, 'key:a').current).toBe(4);
  });

  it("learns the other processes' counts at its next sync, and counts on from them", async () => {
    const first = storeOf();
    const second = storeOf();
    count(first.store, 'key:b');
    count(first.store, 'key:b');
    count(second.store, 'key:b');
    count(second.store, 'key:b');
    await first.synced.sync();
    await second.synced.sync();
    expect(await redis.get(`${keyPrefix}key:b`)).toBe('4');
    // Until its next sync the first knows its own two and what Redis held when it synced (its own).
    expect(count(first.store, 'key:b').current).toBe(3);
    await first.synced.sync();
    expect(count(first.store, 'key:b').current).toBe(6);
    expect(count(second.store, 'key:b').current).toBe(5);
  });

  it('synchronises every syncMs by itself, and sends what is left when closed', async () => {
    const { synced, store } = storeOf({ syncMs: 20 });
    for (let n = 0; n < 5; n += 1) count(store, 'key:c');
    await waitFor(async () => (await redis.get(`${keyPrefix}key:c`)) === '5', { description: 'the periodic sync', timeoutMs: 5000, intervalMs: 10 });
    count(store, 'key:c');
    await synced.close();
    expect(await redis.get(`${keyPrefix}key:c`)).toBe('6');
  });

  it('starts a new window in the process when the one Redis gave has ended', async () => {
    let clock = 1_000_000;
    const { synced, store } = storeOf({ now: () => clock });
    expect(count(store, 'key:d', 5_000)).toEqual({ current: 1, ttl: 5_000 });
    await synced.sync();
    clock += 2_000;
    const during = count(store, 'key:d', 5_000);
    expect(during.current).toBe(2);
    expect(during.ttl).toBeLessThanOrEqual(5_000);
    expect(during.ttl).toBeGreaterThan(2_000);
    clock += 5_000;
    expect(count(store, 'key:d', 5_000)).toEqual({ current: 1, ttl: 5_000 });
  });

  it('keeps counting in the process while Redis is unreachable, so one process still holds the limit', async () => {
    // Nothing listens on this port: every command is refused at once (no offline queue).
    const unreachable = createRedisClient({ url: 'redis://127.0.0.1:1', ...RATE_LIMIT_REDIS_CLIENT });
    unreachable.on('error', () => undefined);
    try {
      const { synced, store } = storeOf({ redis: unreachable });
      for (let n = 0; n < 3; n += 1) count(store, 'key:e');
      await synced.sync();
      expect(count(store, 'key:e').current).toBe(4);
    } finally {
      unreachable.disconnect();
    }
  });
});
