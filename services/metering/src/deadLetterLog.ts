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

/**
 * A record's member of the sorted set: its fields in deadLetterRecordOf's order, and only those,
 * so a record passed with more (a LoggedDeadLetter read back) is still the same member.
 */
function memberOf(record: DeadLetterRecord): string {
  const { partition, offset, deadLetteredAt, errorCode, reason, causeCode, sourceTopic, sourcePartition, sourceOffset, key, valuePreview, customerId, usageEventId } = record;
  const plain: DeadLetterRecord = { partition, offset, deadLetteredAt, errorCode, reason, causeCode, sourceTopic, sourcePartition, sourceOffset, key, valuePreview, customerId, usageEventId };
  return JSON.stringify(plain);
}

/** A member read back; one recorded before letters named their usage event names none. */
function recordOf(member: string): DeadLetterRecord {
  const record = JSON.parse(member) as Partial<DeadLetterRecord> & Omit<DeadLetterRecord, 'customerId' | 'usageEventId'>;
  return { ...record, customerId: record.customerId ?? null, usageEventId: record.usageEventId ?? null };
}

/**
 * Newest first, and among letters of one instant (a chunk's letters share it), the later on the
 * topic first: Redis orders equal scores by member, which compares offsets as text ("9" after "10").
 */
function newestFirst(a: DeadLetterRecord, b: DeadLetterRecord): number {
  const byTime = Date.parse(b.deadLetteredAt) - Date.parse(a.deadLetteredAt);
  if (byTime !== 0) return byTime;
  if (a.partition !== b.partition) return a.partition - b.partition;
  const [left, right] = [BigInt(a.offset), BigInt(b.offset)];
  return left === right ? 0 : left < right ? 1 : -1;
}

/** A dead letter as the log answers it: the record, and whether a send-back has sent it since. */
export interface LoggedDeadLetter extends DeadLetterRecord {
  /** When a send-back last sent it to the usage topic (ISO-8601); null if none has, as far as the log remembers. */
  readonly sentBackAt: string | null;
}

/** Which letters to list: each field given narrows to letters equal to it. */
export interface DeadLetterFilter {
  readonly errorCode?: string | undefined;
  /** The message key, as recorded (producers set it to the customer id). */
  readonly key?: string | undefined;
  /** The customer the letter's value names (`customerId` of the record). */
  readonly customerId?: string | undefined;
  /** Letters of any of these usage events (`usageEventId` of the record). */
  readonly usageEventIds?: readonly string[] | undefined;
}

/** The most recent dead letters, for operators (the console's Dead letters page, GET /v1/dead-letters). */
export interface DeadLetterLog {
  record(records: readonly DeadLetterRecord[]): Promise<void>;
  /** Newest first; with a filter, the newest of those the log keeps that match it. */
  recent(limit: number, filter?: DeadLetterFilter): Promise<LoggedDeadLetter[]>;
  /** Marks letters a send-back sent to the usage topic, by where they sit on the dead-letter topic. */
  markSentBack(partition: number, offsets: readonly string[], at: Date): Promise<void>;
}

export interface DeadLetterLogOptions {
  readonly redis: Redis;
  /** The Redis key prefix of this deployment (TALLY_REDIS_KEY_PREFIX). */
  readonly keyPrefix: string;
  /** How many are kept; older ones are dropped as new ones arrive. Default 1,000. */
  readonly max?: number;
  /** How many send-back marks are kept, the newest; default ten times `max`. */
  readonly maxSentBack?: number;
}

/**
 * One Redis sorted set, scored by when each letter was dead-lettered. A member is the record's
 * JSON, which is the same for every delivery of one dead letter: a redelivered batch adds nothing.
 * Adding and trimming to `max` are one MULTI, so the set never holds more than `max` for long.
 * The full letters stay on the dead-letter topic; this is only what an operator reads first.
 *
 * What has been sent back is a second sorted set, `<partition>:<offset>` scored by when: a letter
 * stays on the topic (and in the log) once sent back, and an operator reading the list should
 * not have to match it against the send-backs' counts. Kept apart from the letters' members,
 * which stay the same for every delivery, and trimmed to its newest marks as the letters are.
 */
export function createDeadLetterLog(options: DeadLetterLogOptions): DeadLetterLog {
  const key = `${options.keyPrefix}:dead-letters`;
  const sentBackKey = `${options.keyPrefix}:dead-letters:sent-back`;
  const max = options.max ?? 1000;
  const maxSentBack = options.maxSentBack ?? 10 * max;
  if (!Number.isInteger(max) || max < 1) throw new Error('max must be a positive integer');
  if (!Number.isInteger(maxSentBack) || maxSentBack < 1) throw new Error('maxSentBack must be a positive integer');
  // Partitions and offsets are decimal integers: the colon cannot occur in either.
  const where = (partition: number, offset: string) => `${partition}:${offset}`;
  return {
    async record(records) {
      if (records.length === 0) return;
      const scored = records.flatMap((record) => [Date.parse(record.deadLetteredAt), memberOf(record)] as const);
      await options.redis.multi().zadd(key, ...scored).zremrangebyrank(key, 0, -(max + 1)).exec();
    },
    async recent(limit, filter = {}) {
      const usageEventIds = filter.usageEventIds === undefined ? undefined : new Set(filter.usageEventIds);
      const matches = (record: DeadLetterRecord) =>
        (filter.errorCode === undefined || record.errorCode === filter.errorCode) &&
        (filter.key === undefined || record.key === filter.key) &&
        (filter.customerId === undefined || record.customerId === filter.customerId) &&
        (usageEventIds === undefined || (record.usageEventId !== null && usageEventIds.has(record.usageEventId)));
      const filtered = filter.errorCode !== undefined || filter.key !== undefined || filter.customerId !== undefined || usageEventIds !== undefined;
      return guardDeadLetters(async () => {
        // A filter reads every letter kept (at most `max`, a thousand by default) and picks.
        const members = await options.redis.zrevrange(key, 0, filtered ? -1 : Math.max(0, Math.min(limit, max) - 1));
        const records = members
          .map(recordOf)
          .filter(matches)
          .sort(newestFirst)
          .slice(0, Math.max(0, limit));
        if (records.length === 0) return [];
        const sentBack = await options.redis.zmscore(sentBackKey, ...records.map((record) => where(record.partition, record.offset)));
        return records.map((record, index) => {
          const at = sentBack[index];
          return { ...record, sentBackAt: at === null || at === undefined ? null : new Date(Number(at)).toISOString() };
        });
      });
    },
    async markSentBack(partition, offsets, at) {
      if (offsets.length === 0) return;
      const scored = offsets.flatMap((offset) => [at.getTime(), where(partition, offset)] as const);
      await options.redis.multi().zadd(sentBackKey, ...scored).zremrangebyrank(sentBackKey, 0, -(maxSentBack + 1)).exec();
    },
  };
}
