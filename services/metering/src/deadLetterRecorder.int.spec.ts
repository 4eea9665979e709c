import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName, waitFor } from '@tally/test-support';
import type { Admin, Producer } from 'kafkajs';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createDeadLetterLog } from './deadLetterLog';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createDeadLetterRecorder } from './deadLetterRecorder';

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
      // Recording the same batch again (a redelivery after a crash before the commit) adds nothing.
      await log.record(recent);
      expect(await log.recent(10)).toEqual(recent);
    } finally {
      await recorder.stop();
    }
  });
});
