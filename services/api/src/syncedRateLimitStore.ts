import type { FastifyRateLimitOptions, FastifyRateLimitStore } from '@fastify/rate-limit';
import { createOutageLog, createPeriodicWorker } from '@tally/runtime';
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from 'pino';

export interface SyncedRateLimitStoreOptions {
  readonly redis: Redis;
  /** Prefix of the counters' keys: the keys the plugin's own Redis store counts in, so both kinds of process share them. */
  readonly keyPrefix: string;
  /** How often this process adds what it counted to Redis and reads back what every process counted. */
  readonly syncMs: number;
  /** The window a counter starts with when the plugin gives none. */
  readonly windowMs: number;
  readonly logger: Logger;
  /** Milliseconds since the epoch; tests move it. */
  readonly now?: () => number;
}

export interface SyncedRateLimitStore {
  /** What @fastify/rate-limit's `store` option takes. */
  readonly Store: new (options: FastifyRateLimitOptions) => FastifyRateLimitStore;
  /** One sync now: what was counted since the last one is added to Redis, and the totals read back. */
  sync(): Promise<void>;
  /** Sends what is counted and stops syncing. */
  close(): Promise<void>;
}

interface Counter {
  /** The count in Redis when the last sync answered (this process's counts sent so far included). */
  known: number;
  /** Counted here since, not yet sent. */
  pending: number;
  /** Sent in the sync in flight, not yet answered. */
  sending: number;
  /** When the window ends, by this clock: Redis's PTTL as of the last sync. */
  resetAt: number;
  readonly windowMs: number;
}

/**
 * Adds one process's counts to a counter and starts its window if it has none: a fixed window,
 * as the plugin's own script keeps it (it sets the expiry on the first count), so processes of
 * either kind can share a counter. Returns the total and the milliseconds left.
 */
const SYNC_LUA = `
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return { current, ttl }
`;

type SyncingPipeline = ChainableCommander & { tallyRateLimitSync(key: string, count: number, windowMs: number): ChainableCommander };

/**
 * A counter store for @fastify/rate-limit that counts each request in this process and adds the
 * counts to Redis every `syncMs`, all counters in one pipeline, instead of a script and a round
 * trip before every request (the plugin's own Redis store). A request is then admitted without
 * waiting on Redis: with the plugin's store the per-key limiter was a second round trip on every
 * keyed request, about a third of a balance lookup's cost (docs/benchmarks.md, 2026-12-02).
 *
 * What it guarantees: in one process the count is exact (every request it admitted, plus what
 * the others had counted as of the last sync), so one process alone never passes a limit. Across
 * processes a limit holds to within what the others admitted since their last sync: at most
 * about their rate × `syncMs` more in a window (as Kong's rate limiting with `sync_rate`). While
 * Redis is unreachable each process keeps counting on its own (fail open across processes, as
 * the plugin's store fails open altogether), and its counts made meanwhile are not sent later.
 */
export function createSyncedRateLimitStore(options: SyncedRateLimitStoreOptions): SyncedRateLimitStore {
  const { redis, syncMs, windowMs } = options;
  const logger = options.logger.child({ module: 'rate-limit-sync' });
  const now = options.now ?? Date.now;
  if (!Number.isInteger(windowMs) || windowMs < 1) throw new RangeError(`windowMs must be a positive integer; got ${windowMs}`);
  if ((redis as Partial<Record<'tallyRateLimitSync', unknown>>).tallyRateLimitSync === undefined) {
    redis.defineCommand('tallyRateLimitSync', { numberOfKeys: 1, lua: SYNC_LUA });
  }
  const counters = new Map<string, Counter>();
  const outage = createOutageLog(logger);

  const sync = async (): Promise<void> => {
    const at = now();
    const batch: { key: string; counter: Counter; count: number }[] = [];
    for (const [key, counter] of counters) {
      if (counter.pending > 0) {
        batch.push({ key, counter, count: counter.pending });
        counter.sending += counter.pending;
        counter.pending = 0;
      } else if (counter.sending === 0 && at >= counter.resetAt) {
        // Its window is over and nothing of it is left to send: a key seen once is not kept.
        counters.delete(key);
      }
    }
    if (batch.length === 0) return;
    const pipeline = redis.pipeline() as SyncingPipeline;
    for (const { key, counter, count } of batch) pipeline.tallyRateLimitSync(key, count, counter.windowMs);
    let replies: [Error | null, unknown][] | null = null;
    try {
      replies = await pipeline.exec();
    } catch (error) {
      logger.debug({ err: error }, 'the rate-limit sync pipeline failed');
    }
    const answeredAt = now();
    let failed = 0;
    batch.forEach(({ counter, count }, index) => {
      counter.sending -= count;
      const [error, reply] = replies?.[index] ?? [null, undefined];
      if (error !== null || !Array.isArray(reply)) {
        // Not in Redis: kept here, so this process still holds the limit by its own counts.
        counter.known += count;
        failed += 1;
        return;
      }
      // Redis answers a connection's commands in order: the total includes every count sent
      // before this one, and none sent after it (still in `sending`).
      counter.known = Number(reply[0]);
      counter.resetAt = answeredAt + Number(reply[1]);
    });
    if (failed > 0) outage.failed({ failed, counters: batch.length }, 'rate-limit counters not synchronised with Redis; counting in this process meanwhile');
    else outage.succeeded({}, 'rate-limit counters synchronised with Redis again');
  };

  const worker = createPeriodicWorker({ name: 'rate-limit-sync', logger, intervalMs: syncMs, runAtStart: false, run: sync });
  void worker.start();

  class SyncedStore implements FastifyRateLimitStore {
    constructor(
      _options: FastifyRateLimitOptions,
      private readonly prefix = options.keyPrefix,
    ) {}

    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow?: number): void {
      const counterKey = this.prefix + key;
      const at = now();
      let counter = counters.get(counterKey);
      if (counter === undefined || at >= counter.resetAt) {
        const window = typeof timeWindow === 'number' && timeWindow > 0 ? timeWindow : windowMs;
        counter = { known: 0, pending: 0, sending: 0, resetAt: at + window, windowMs: window };
        counters.set(counterKey, counter);
      }
      counter.pending += 1;
      callback(null, { current: counter.known + counter.sending + counter.pending, ttl: counter.resetAt - at });
    }

    /** A route's own limit (config.rateLimit) counts apart, named as the plugin's Redis store names it. */
    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      // The plugin passes its merged parameters with the route under `routeInfo` (what its own
      // Redis store reads), not the RouteOptions its types declare.
      const { routeInfo } = routeOptions as unknown as { routeInfo?: { method?: unknown; url?: unknown } };
      return new SyncedStore({}, `${this.prefix}${String(routeInfo?.method ?? '')}${String(routeInfo?.url ?? '')}-`);
    }
  }

  return {
    Store: SyncedStore,
    sync,
    async close() {
      await worker.stop();
      await sync();
    },
  };
}
