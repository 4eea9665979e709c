import { TallyError } from '@tally/domain';
import { guardTransient } from '@tally/runtime';
import type { Redis } from 'ioredis';
import type { DeadLetterRecord } from './deadLetterRecord';
import { DeadLettersUnavailableError } from './meteringErrors';

/**
 * What Redis and PostgreSQL throw for the dead letters' reads and send-backs is their own error
 * (a connection refused, retries run out): an unavailable dependency, not a bug.
 */
export const guardDeadLetters = guardTransient(
  (error) => !(error instanceof TallyError),
  (cause) => new DeadLettersUnavailableError('the dead-letter log is unavailable', { cause }),
);

/** The most recent dead letters, for operators (the console's Dead letters page, GET /v1/dead-letters). */
export interface DeadLetterLog {
  record(records: readonly DeadLetterRecord[]): Promise<void>;
  /** Newest first. */
  recent(limit: number): Promise<DeadLetterRecord[]>;
}

export interface DeadLetterLogOptions {
  readonly redis: Redis;
  /** The Redis key prefix of this deployment (TALLY_REDIS_KEY_PREFIX). */
  readonly keyPrefix: string;
  /** How many are kept; older ones are dropped as new ones arrive. Default 1,000. */
  readonly max?: number;
}

/**
 * One Redis sorted set, scored by when each letter was dead-lettered. A member is the record's
 * JSON, which is the same for every delivery of one dead letter: a redelivered batch adds nothing.
 * Adding and trimming to `max` are one MULTI, so the set never holds more than `max` for long.
 * The full letters stay on the dead-letter topic; this is only what an operator reads first.
 */
export function createDeadLetterLog(options: DeadLetterLogOptions): DeadLetterLog {
  const key = `${options.keyPrefix}:dead-letters`;
  const max = options.max ?? 1000;
  if (!Number.isInteger(max) || max < 1) throw new Error('max must be a positive integer');
  return {
    async record(records) {
      if (records.length === 0) return;
      const scored = records.flatMap((record) => [Date.parse(record.deadLetteredAt), JSON.stringify(record)] as const);
      await options.redis.multi().zadd(key, ...scored).zremrangebyrank(key, 0, -(max + 1)).exec();
    },
    async recent(limit) {
      const members = await guardDeadLetters(() => options.redis.zrevrange(key, 0, Math.max(0, Math.min(limit, max) - 1)));
      return members.map((member) => JSON.parse(member) as DeadLetterRecord);
    },
  };
}
