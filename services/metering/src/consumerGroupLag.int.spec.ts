import { setTimeout as delay } from 'node:timers/promises';
import { capturedLog, createTestKafka, createTestTopic, deleteTopics, startKafkaProxy, stackConfig, uniqueName, waitFor, type KafkaProxy } from '@tally/test-support';
import type { Admin, Producer } from 'kafkajs';
import { createConsumerGroupLag, type PartitionGroupLag } from './consumerGroupLag';

jest.setTimeout(120_000);

/** kafkajs API keys of what a reading sends: ListOffsets and OffsetFetch. */
const LIST_OFFSETS = 2;
const OFFSET_FETCH = 9;

/** The group lag reader's own life: its readings through a broker that fails or stops answering. */
describe('reading a consumer group’s lag on a schedule', () => {
  const testKafka = createTestKafka('group-lag-test');
  let admin: Admin;
  let producer: Producer;
  let proxy: KafkaProxy;
  const topics: string[] = [];

  beforeAll(async () => {
    admin = testKafka.admin();
    await admin.connect();
    producer = testKafka.producer();
    await producer.connect();
  });

  beforeEach(async () => {
    proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
  });

  afterEach(async () => {
    await proxy.close();
  });

  afterAll(async () => {
    await producer?.disconnect();
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin?.disconnect();
  });

  /** A reader over the proxy, every 50 ms, keeping its readings and its log lines. */
  async function startReader() {
    const topic = await createTestTopic(admin, { prefix: 'group_lag' });
    topics.push(topic);
    const readings: (readonly PartitionGroupLag[])[] = [];
    const { logger, lines } = capturedLog('error');
    const reader = createConsumerGroupLag({
      kafka: { brokers: [proxy.broker], clientId: uniqueName('group_lag') },
      groupId: uniqueName('group_lag'),
      topic,
      fromBeginning: true,
      intervalMs: 50,
      logger,
      report: (lags) => readings.push(lags),
    });
    await reader.start();
    const lagIs = (lag: number) => readings.at(-1)?.[0]?.lag === lag;
    return { topic, reader, readings, lines, lagIs };
  }

  it('reads again after the broker comes back, with what was produced meanwhile', async () => {
    const { topic, reader, lines, lagIs } = await startReader();
    try {
      await waitFor(() => lagIs(0), { description: 'a first reading of an empty topic' });
      proxy.down();
      await waitFor(() => lines.some((line) => line.includes('consumer-group-lag run failed')), { description: 'a failed reading logged' });
      await producer.send({ topic, messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] });
      proxy.resume();
      await waitFor(() => lagIs(3), { description: 'a reading with the 3 messages produced while the broker was away' });
    } finally {
      await reader.stop();
    }
  });

  it('stops without waiting for a reading the broker never answers', async () => {
    const { reader, lagIs } = await startReader();
    await waitFor(() => lagIs(0), { description: 'a first reading' });
    proxy.swallow([LIST_OFFSETS, OFFSET_FETCH]);
    await waitFor(() => proxy.swallowedCount() > 0, { description: 'a reading waiting on the broker' });
    // kafkajs's default request timeout is 30 s; the reader's own, 5 s, bounds the stop.
    const outcome = await Promise.race([reader.stop().then(() => 'stopped'), delay(10_000).then(() => 'still waiting after 10 s')]);
    expect(outcome).toBe('stopped');
  });
});
