import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

interface LuaScript {
  run(redis: Redis, keys: readonly string[], args: readonly string[]): Promise<unknown>;
}

/**
 * Runs a script by its SHA and loads it on NOSCRIPT, which is what a restarted (or flushed
 * with SCRIPT FLUSH) Redis answers. Keys and arguments go as one array so that a batch of
 * thousands of values is never spread into a call's argument list.
 */
export function createLuaScript(source: string): LuaScript {
  const sha = createHash('sha1').update(source).digest('hex');
  return {
    async run(redis, keys, args) {
      const keysAndArgs = [...keys, ...args];
      try {
        return await redis.evalsha(sha, keys.length, keysAndArgs);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.includes('NOSCRIPT')) throw error;
        return redis.eval(source, keys.length, keysAndArgs);
      }
    },
  };
}
