import { Redis, type RedisOptions } from 'ioredis';

const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 5_000;

interface RedisClientOptions {
  readonly url: string;
  /**
   * How long a command may wait for its reply, including time spent queued while disconnected;
   * then it fails with "Command timed out" (default 5 s). Without it a command sent to a Redis
   * that stopped answering (a partition, a stalled failover) waits for ever, and so does
   * whatever awaits it: an API request, a projector batch, a shutdown.
   */
  readonly commandTimeoutMs?: number;
  /**
   * Retries of a command across reconnections; null (the default) keeps it queued until Redis is
   * back or its timeout ends it, which is what long-running roles want. A one-shot CLI gives a
   * small number so that it fails instead of waiting.
   */
  readonly maxRetriesPerRequest?: number | null;
  /** Connect on the first command rather than at once. */
  readonly lazyConnect?: boolean;
  /**
   * Queue commands while disconnected (default true). False fails them at once instead, for a
   * client whose callers would rather go without an answer than wait (the API's rate limiter).
   */
  readonly enableOfflineQueue?: boolean;
  /**
   * Send the commands issued in one tick of the event loop as one pipeline (default false). Many
   * concurrent readers (the API's lookups) then share a write and a round trip instead of each
   * paying one; replies still resolve each caller's own promise, in order. Off by default; it
   * also suits a client without an offline queue (the rate limiter's): while disconnected its
   * commands still fail at once, and while Redis stalls they fail within the command timeout
   * (about twice it, ioredis sending one pipeline at a time).
   */
  readonly enableAutoPipelining?: boolean;
  /** TLS options (a CA of one's own); a `rediss://` URL turns TLS on by itself. */
  readonly tls?: RedisOptions['tls'];
}

/** The one way Tally's processes open a Redis connection, so that none is without a command timeout. */
export function createRedisClient(options: RedisClientOptions): Redis {
  const commandTimeout = options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
  if (!Number.isInteger(commandTimeout) || commandTimeout < 1) {
    throw new RangeError(`commandTimeoutMs must be a positive integer; got ${commandTimeout}`);
  }
  return new Redis(options.url, {
    commandTimeout,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? null : options.maxRetriesPerRequest,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    lazyConnect: options.lazyConnect ?? false,
    enableAutoPipelining: options.enableAutoPipelining ?? false,
    // No CLIENT SETINFO on connecting: Redis before 7.2 (Debian 12's 7.0) answers it with an
    // error, and ioredis clears a command's timeout timer only when the command succeeds
    // (redis/ioredis#1535), so each connection left two commandTimeout timers that kept a
    // closed client's process alive for up to 5 s. It only labelled connections in CLIENT LIST.
    disableClientInfo: true,
    ...(options.tls !== undefined ? { tls: options.tls } : {}),
  });
}
