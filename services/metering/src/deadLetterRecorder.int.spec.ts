import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName, waitFor } from '@tally/test-support';
import { PartitionAssigners, type Admin, type Producer } from 'kafkajs';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createDeadLetterLog } from './deadLetterLog';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createDeadLetterRecorder } from './deadLetterRecorder';
import { deadLetterRecordOf } from './deadLetterRecord';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** The console's Dead letters page reads what this records: the newest letters, each once, bounded. */
describe('the dead-letter recorder', () => {
  let admin: Admin;
  let producer: Producer;
  let redis: Redis;
  const topics: string[] = [];
  const keyPrefix = uniqueName('dlq_log');

  beforeAll(async () => {
    const kafka = createTestKafka('dead-letter-recorder-test');
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
    redis = new Redis(stackConfig.redisUrl);
  });

  afterAll(async () => {
    await deleteTopics(admin, topics).catch(() => undefined);
    await Promise.all([admin?.disconnect(), producer?.disconnect()]);
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.unlink(...keys);
    await redis.quit();
  });

  it('records dead letters with their reason and origin, newest first, the newest alone, and a redelivery once', async () => {
    const topic = await createTestTopic(admin, { prefix: 'dlq_recorder', partitions: 2 });
    topics.push(topic);
    const letter = (index: number) => ({
      key: `customer-${index}`,
      value: Buffer.concat([Buffer.from(`{"broken": ${index}`), Buffer.from([0x00, 0xff])]),
      headers: {
        [DEAD_LETTER_HEADERS.reason]: `event ${index} is not JSON`,
        [DEAD_LETTER_HEADERS.errorCode]: 'invalid_usage_event',
        [DEAD_LETTER_HEADERS.sourceTopic]: 'usage-events',
        [DEAD_LETTER_HEADERS.sourcePartition]: '3',
        [DEAD_LETTER_HEADERS.sourceOffset]: String(100 + index),
        [DEAD_LETTER_HEADERS.at]: new Date(Date.UTC(2026, 2, 1, 12, 0, index)).toISOString(),
      },
    });
    await producer.send({ topic, messages: [0, 1, 2, 3, 4].map(letter) });
    const log = createDeadLetterLog({ redis, keyPrefix, max: 3 });
    const recorder = createDeadLetterRecorder({ kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: 'dlq-recorder-test' }, topic, groupId: uniqueName('dlq_recorder'), log, logger });
    await recorder.start();
    try {
      const recent = await waitFor(
        async () => {
          const found = await log.recent(10);
          return found.length === 3 && found[0]?.key === 'customer-4' ? found : undefined;
        },
        { description: 'the newest three dead letters', timeoutMs: 60_000 },
      );
      expect(recent.map((record) => record.key)).toEqual(['customer-4', 'customer-3', 'customer-2']);
      expect(recent[0]).toMatchObject({
        errorCode: 'invalid_usage_event',
        reason: 'event 4 is not JSON',
        sourceTopic: 'usage-events',
        sourcePartition: 3,
        sourceOffset: '104',
        deadLetteredAt: '2026-03-01T12:00:04.000Z',
        valuePreview: '{"broken": 4\ufffd\ufffd',
      });
      expect(recent.map((record) => record.sentBackAt)).toEqual([null, null, null]);
      // Recording the same batch again (a redelivery after a crash before the commit) adds nothing.
      await log.record(recent);
      expect(await log.recent(10)).toEqual(recent);

      // Sent back by a send-back: said of that letter alone, the latest time standing; the
      // newest marks are kept (here 2).
      const marking = createDeadLetterLog({ redis, keyPrefix, max: 3, maxSentBack: 2 });
      const [newest, , oldest] = recent;
      await marking.markSentBack(newest!.partition, [newest!.offset], new Date('2026-03-02T08:00:00Z'));
      await marking.markSentBack(newest!.partition, [newest!.offset], new Date('2026-03-02T09:00:00Z'));
      expect((await marking.recent(10)).map((record) => record.sentBackAt)).toEqual(['2026-03-02T09:00:00.000Z', null, null]);
      await marking.markSentBack(oldest!.partition, [oldest!.offset, '9999'], new Date('2026-03-02T10:00:00Z'));
      // Two marks at one time: which of the oldest goes is Redis's order of equal scores, so the
      // newest letter's (the oldest mark) is the one dropped.
      expect((await marking.recent(10)).map((record) => record.sentBackAt)).toEqual([null, null, '2026-03-02T10:00:00.000Z']);
      // Read back with its marks and recorded again: still the same members.
      await log.record(await marking.recent(10));
      expect((await log.recent(10)).map((record) => record.key)).toEqual(['customer-4', 'customer-3', 'customer-2']);
    } finally {
      await recorder.stop();
    }
  });
  it("finds a usage event's letters by the customer and id they name, and reads a letter recorded before letters named any", async () => {
    const prefix = `${keyPrefix}_usage`;
    const log = createDeadLetterLog({ redis, keyPrefix: prefix });
    const letter = (offset: number, customerId: string | null, usageEventId: string | null) =>
      deadLetterRecordOf(0, {
        offset: String(offset),
        timestamp: '0',
        key: null,
        value: null,
        headers: {
          [DEAD_LETTER_HEADERS.at]: new Date(Date.UTC(2026, 2, 1, 12, 0, offset)).toISOString(),
          ...(customerId === null ? {} : { [DEAD_LETTER_HEADERS.customerId]: customerId }),
          ...(usageEventId === null ? {} : { [DEAD_LETTER_HEADERS.usageEventId]: usageEventId }),
        },
      });
    await log.record([letter(1, 'acme', 'e-1'), letter(2, 'acme', 'e-2'), letter(3, 'globex', 'e-1'), letter(4, 'acme', 'e-1'), letter(5, null, null)]);
    const found = await log.recent(100, { customerId: 'acme', usageEventIds: ['e-1', 'e-9'] });
    expect(found.map((record) => [record.offset, record.customerId, record.usageEventId])).toEqual([
      ['4', 'acme', 'e-1'],
      ['1', 'acme', 'e-1'],
    ]);
    expect((await log.recent(100, { usageEventIds: ['e-2'] })).map((record) => record.offset)).toEqual(['2']);
    expect(await log.recent(100, { customerId: 'acme', usageEventIds: [] })).toEqual([]);

    // Letters of one instant (one chunk's) come later-on-the-topic first, offsets compared as numbers.
    const sameInstant = createDeadLetterLog({ redis, keyPrefix: `${prefix}_instant` });
    const at = (offset: string) => ({ ...letter(1, 'acme', `e-${offset}`), offset });
    await sameInstant.record([at('9'), at('10'), at('100')]);
    expect((await sameInstant.recent(10)).map((record) => record.offset)).toEqual(['100', '10', '9']);

    // A member as the log kept it before letters named their usage event: read with both as null.
    const { customerId: _customerId, usageEventId: _usageEventId, ...older } = letter(6, 'acme', 'e-1');
    await redis.zadd(`${prefix}:dead-letters`, Date.parse(older.deadLetteredAt), JSON.stringify(older));
    expect((await log.recent(1))[0]).toEqual({ ...older, customerId: null, usageEventId: null, sentBackAt: null });
    expect((await log.recent(100, { customerId: 'acme', usageEventIds: ['e-1'] })).map((record) => record.offset)).toEqual(['4', '1']);
  });

  it("finds a usage event's letters through an index that follows the log's trimming, heals what a crash left and indexes an older Tally's letters", async () => {
    const prefix = `${keyPrefix}_index`;
    const indexKey = `${prefix}:dead-letters:by-usage-event`;
    const letter = (offset: number, customerId: string, usageEventId: string) =>
      deadLetterRecordOf(offset % 2, {
        offset: String(offset),
        timestamp: '0',
        key: Buffer.from(customerId),
        value: null,
        headers: {
          [DEAD_LETTER_HEADERS.at]: new Date(Date.UTC(2026, 2, 1, 12, 0, 0, offset)).toISOString(),
          [DEAD_LETTER_HEADERS.customerId]: customerId,
          [DEAD_LETTER_HEADERS.usageEventId]: usageEventId,
        },
      });
    const offsetsOf = async (log: ReturnType<typeof createDeadLetterLog>, customerId: string, usageEventIds: string[]) =>
      (await log.recent(100, { customerId, usageEventIds })).map((record) => record.offset);

    // A letter an older Tally recorded (in the log, not in the index): found by a process built since.
    const older = letter(1, 'acme', 'e-1');
    await redis.zadd(`${prefix}:dead-letters`, Date.parse(older.deadLetteredAt), JSON.stringify(older));
    const log = createDeadLetterLog({ redis, keyPrefix: prefix, max: 3 });
    expect(await offsetsOf(log, 'acme', ['e-1'])).toEqual(['1']);

    // Ids whose plain concatenations are equal stay apart: each id is written after its length.
    await log.record([letter(2, 'ac', 'mee-1'), letter(3, 'acme', 'e-1')]);
    expect(await offsetsOf(log, 'acme', ['e-1'])).toEqual(['3', '1']);
    expect(await offsetsOf(log, 'ac', ['mee-1'])).toEqual(['2']);
    expect(await offsetsOf(log, 'acme', ['e-'])).toEqual([]);

    // Trimmed from the log (max 3), a letter leaves the index in the same record.
    await log.record([letter(4, 'globex', 'g-1'), letter(5, 'globex', 'g-2')]);
    expect(await offsetsOf(log, 'acme', ['e-1'])).toEqual(['3']);
    expect(await offsetsOf(log, 'ac', ['mee-1'])).toEqual([]);
    expect(await redis.zcard(indexKey)).toBe(3);

    // An entry whose letter is gone (a crash between the MULTI and the removal) is not listed, and is removed.
    const lost = letter(0, 'globex', 'g-1');
    const lostEntry = `6:globex3:g-1${JSON.stringify(lost)}`;
    await redis.zadd(indexKey, 0, lostEntry);
    expect(await offsetsOf(log, 'globex', ['g-1', 'g-2'])).toEqual(['5', '4']);
    expect(await redis.zscore(indexKey, lostEntry)).toBeNull();
    // Read with the letters, each one's send-back: the one marked, not the other.
    await log.markSentBack(1, ['5'], new Date('2026-03-02T09:00:00Z'));
    const sentBack = await log.recent(100, { customerId: 'globex', usageEventIds: ['g-1', 'g-2'] });
    expect(sentBack.map((record) => [record.offset, record.sentBackAt])).toEqual([
      ['5', '2026-03-02T09:00:00.000Z'],
      ['4', null],
    ]);

    // Processes recording at once, each trimming: the index holds exactly the log's letters.
    const writers = [0, 1, 2].map(() => createDeadLetterLog({ redis, keyPrefix: prefix, max: 25 }));
    await Promise.all(
      writers.map(async (writer, index) => {
        for (let batch = 0; batch < 20; batch++) {
          const base = 1000 + index * 1000 + batch * 10;
          await writer.record([0, 1, 2, 3, 4].map((n) => letter(base + n, `c-${n}`, `e-${base + n}`)));
        }
      }),
    );
    const kept = await redis.zrange(`${prefix}:dead-letters`, 0, -1);
    expect(kept).toHaveLength(25);
    const entries = await redis.zrange(indexKey, 0, -1);
    expect(entries.map((entry) => entry.slice(entry.indexOf('{'))).sort()).toEqual([...kept].sort());
  });
  it('fails as a worker when kafkajs gives up on it (a non-retriable error), rather than stop recording unseen', async () => {
    const topic = await createTestTopic(admin, { prefix: 'dlq_recorder_crash' });
    topics.push(topic);
    const groupId = uniqueName('dlq_recorder_crash');
    // A member of the group whose assignor the recorder does not speak: the broker refuses the
    // recorder's join with INCONSISTENT_GROUP_PROTOCOL, which kafkajs does not retry.
    const other = createTestKafka(uniqueName('dlq-recorder-other')).consumer({
      groupId,
      partitionAssigners: [(config) => ({ ...PartitionAssigners.roundRobin(config), name: 'TallyTestOtherAssigner' })],
    });
    await other.connect();
    await other.subscribe({ topics: [topic] });
    await other.run({ eachMessage: async () => undefined });
    const recorder = createDeadLetterRecorder({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: 'dlq-recorder-test' },
      topic,
      groupId,
      log: createDeadLetterLog({ redis, keyPrefix }),
      logger,
    });
    const failures: unknown[] = [];
    recorder.onFailure((error) => failures.push(error));
    await recorder.start();
    try {
      await waitFor(() => recorder.state() === 'failed', { description: 'the recorder to fail as a worker' });
      expect(String(failures[0])).toContain('protocols are incompatible');
    } finally {
      await recorder.stop();
      await other.disconnect();
    }
  });
});
