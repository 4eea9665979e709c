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

/** How many letters the log keeps unless told otherwise: the newest thousand. */
export const DEFAULT_DEAD_LETTER_LOG_SIZE = 1000;

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
  /** How many are kept; older ones are dropped as new ones arrive. Default DEFAULT_DEAD_LETTER_LOG_SIZE. */
  readonly max?: number;
  /** How many send-back marks are kept, the newest; default ten times `max`. */
  readonly maxSentBack?: number;
}

/**
 * The by-usage-event index's entries of one usage event start with this: each id after its
 * length, so that no pair's prefix is the start of another pair's entry.
 */
function usagePrefix(customerId: string, usageEventId: string): string {
  return `${customerId.length}:${customerId}${usageEventId.length}:${usageEventId}`;
}

/** A letter's entry in the index (its prefix, then its member), or null for a letter that names no usage event. */
function indexEntryOf(record: DeadLetterRecord, member: string): string | null {
  return record.customerId === null || record.usageEventId === null ? null : usagePrefix(record.customerId, record.usageEventId) + member;
}

/** The index entry of a member read back from the log, or null. */
const entryOfMember = (member: string): string | null => indexEntryOf(recordOf(member), member);

/** ZADD's arguments for index entries: every score 0, so the set orders them by their bytes. */
const unscored = (entries: readonly string[]): (string | number)[] => entries.flatMap((entry) => [0, entry]);

/** A lexicographic range over every entry that starts with `prefix`: no UTF-8 text holds the byte 0xff. */
function startingWith(prefix: string): [Buffer, Buffer] {
  return [Buffer.from(`[${prefix}`), Buffer.concat([Buffer.from(`(${prefix}`), Buffer.from([0xff])])];
}

/** How often building the index is tried again while letters keep arriving under it, before it is left to the next call. */
const MAX_INDEX_ATTEMPTS = 20;

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
 *
 * A usage lookup asks for the letters of a few events of one customer, on a hot path: reading the
 * whole log for it (a megabyte when full) held a process to about 150 lookups a second. A third
 * set indexes every letter that names a usage event, lexicographically by customer and usage
 * event id, each entry ending in the letter's member. The entry is added in the letter's MULTI,
 * and removed once the MULTI has trimmed its letter; an entry a crash left behind names a member
 * the log no longer holds, so a lookup checks each against the log and removes those it finds
 * gone. Each process builds the index again from the log before its first use (under WATCH, on
 * a connection of its own), which indexes what an older Tally recorded and clears what crashes
 * left.
 */
export function createDeadLetterLog(options: DeadLetterLogOptions): DeadLetterLog {
  const { redis } = options;
  const key = `${options.keyPrefix}:dead-letters`;
  const sentBackKey = `${options.keyPrefix}:dead-letters:sent-back`;
  const indexKey = `${options.keyPrefix}:dead-letters:by-usage-event`;
  const max = options.max ?? DEFAULT_DEAD_LETTER_LOG_SIZE;
  const maxSentBack = options.maxSentBack ?? 10 * max;
  if (!Number.isInteger(max) || max < 1) throw new Error('max must be a positive integer');
  if (!Number.isInteger(maxSentBack) || maxSentBack < 1) throw new Error('maxSentBack must be a positive integer');
  // Partitions and offsets are decimal integers: the colon cannot occur in either.
  const where = (partition: number, offset: string) => `${partition}:${offset}`;

  async function buildIndex(): Promise<void> {
    // WATCH holds for the connection it was sent on: one shared with other callers could see an
    // EXEC of theirs end it.
    const connection = redis.duplicate();
    try {
      for (let attempt = 1; attempt <= MAX_INDEX_ATTEMPTS; attempt++) {
        await connection.watch(key);
        const members = await connection.zrange(key, 0, -1);
        const entries = members.flatMap((member) => entryOfMember(member) ?? []);
        const transaction = connection.multi().del(indexKey);
        if (entries.length > 0) transaction.zadd(indexKey, ...unscored(entries));
        // Null when a letter was recorded or trimmed since the WATCH: read the log again.
        if ((await transaction.exec()) !== null) return;
      }
      throw new Error(`the dead letters' index could not be built in ${MAX_INDEX_ATTEMPTS} attempts: letters kept arriving`);
    } finally {
      connection.disconnect();
    }
  }
  let indexing: Promise<void> | undefined;
  const indexBuilt = () =>
    (indexing ??= buildIndex().catch((error: unknown) => {
      indexing = undefined;
      throw error;
    }));

  const sentBackAt = (at: string | null | undefined) => (at === null || at === undefined ? null : new Date(Number(at)).toISOString());
  const withSentBack = async (records: readonly DeadLetterRecord[]): Promise<LoggedDeadLetter[]> => {
    if (records.length === 0) return [];
    const sentBack = await redis.zmscore(sentBackKey, ...records.map((record) => where(record.partition, record.offset)));
    return records.map((record, index) => ({ ...record, sentBackAt: sentBackAt(sentBack[index]) }));
  };

  /**
   * The letters that name the given usage events of one customer, through the index, whatever
   * else the filter asks, with their send-backs: read with the check of the entries against the
   * log, in one round trip.
   */
  async function ofUsageEvents(customerId: string, usageEventIds: ReadonlySet<string>): Promise<LoggedDeadLetter[]> {
    const prefixes = [...usageEventIds].map((usageEventId) => usagePrefix(customerId, usageEventId));
    if (prefixes.length === 0) return [];
    await indexBuilt();
    const read = redis.pipeline();
    for (const prefix of prefixes) read.zrangebylex(indexKey, ...startingWith(prefix));
    const found = ((await read.exec()) ?? []).flatMap(([error, entries], index) => {
      if (error !== null) throw error;
      return (entries as string[]).map((entry) => ({ entry, member: entry.slice(prefixes[index]!.length) }));
    });
    if (found.length === 0) return [];
    const records = found.map(({ member }) => recordOf(member));
    const check = redis
      .pipeline()
      .zmscore(key, ...found.map(({ member }) => member))
      .zmscore(sentBackKey, ...records.map((record) => where(record.partition, record.offset)));
    const [scores, sentBack] = ((await check.exec()) ?? []).map(([error, scored]) => {
      if (error !== null) throw error;
      return scored as Array<string | null>;
    });
    if (scores === undefined || sentBack === undefined) throw new Error("the dead letters' check against the log went unanswered");
    const kept = (index: number) => scores[index] !== null && scores[index] !== undefined;
    const stale = found.filter((_, index) => !kept(index)).map(({ entry }) => entry);
    if (stale.length > 0) await redis.zrem(indexKey, ...stale);
    return records.flatMap((record, index) => (kept(index) ? [{ ...record, sentBackAt: sentBackAt(sentBack[index]) }] : []));
  }

  return {
    async record(records) {
      if (records.length === 0) return;
      await indexBuilt();
      const members = records.map(memberOf);
      const scored = records.flatMap((record, index) => [Date.parse(record.deadLetteredAt), members[index]!] as const);
      const indexed = records.flatMap((record, index) => indexEntryOf(record, members[index]!) ?? []);
      const transaction = redis.multi().zadd(key, ...scored);
      if (indexed.length > 0) transaction.zadd(indexKey, ...unscored(indexed));
      transaction.zrange(key, 0, -(max + 1)).zremrangebyrank(key, 0, -(max + 1));
      const results = await transaction.exec();
      // The trimmed letters, as ZRANGE read them inside the MULTI, just before they went.
      const [error, trimmed] = results?.[results.length - 2] ?? [new Error('the dead-letter log\'s MULTI was discarded'), []];
      if (error !== null) throw error;
      const stale = (trimmed as string[]).flatMap((member) => entryOfMember(member) ?? []);
      if (stale.length > 0) await redis.zrem(indexKey, ...stale);
    },
    async recent(limit, filter = {}) {
      const usageEventIds = filter.usageEventIds === undefined ? undefined : new Set(filter.usageEventIds);
      const matches = (record: DeadLetterRecord) =>
        (filter.errorCode === undefined || record.errorCode === filter.errorCode) &&
        (filter.key === undefined || record.key === filter.key) &&
        (filter.customerId === undefined || record.customerId === filter.customerId) &&
        (usageEventIds === undefined || (record.usageEventId !== null && usageEventIds.has(record.usageEventId)));
      const filtered = filter.errorCode !== undefined || filter.key !== undefined || filter.customerId !== undefined || usageEventIds !== undefined;
      const picked = <Letter extends DeadLetterRecord>(letters: Letter[]) => letters.filter(matches).sort(newestFirst).slice(0, Math.max(0, limit));
      return guardDeadLetters(async () =>
        filter.customerId !== undefined && usageEventIds !== undefined
          ? picked(await ofUsageEvents(filter.customerId, usageEventIds))
          : // Any other filter reads every letter kept (at most `max`, a thousand by default) and picks.
            withSentBack(picked((await redis.zrevrange(key, 0, filtered ? -1 : Math.max(0, Math.min(limit, max) - 1))).map(recordOf))),
      );
    },
    async markSentBack(partition, offsets, at) {
      if (offsets.length === 0) return;
      const scored = offsets.flatMap((offset) => [at.getTime(), where(partition, offset)] as const);
      await redis.multi().zadd(sentBackKey, ...scored).zremrangebyrank(sentBackKey, 0, -(maxSentBack + 1)).exec();
    },
  };
}
