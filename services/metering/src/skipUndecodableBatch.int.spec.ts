import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName } from '@tally/test-support';
import type { Admin } from 'kafkajs';
import { SkipBatchRefusedError, skipUndecodableBatch, type SkipUndecodableBatchOptions } from './skipUndecodableBatch';

jest.setTimeout(60_000);

/**
 * `tally skip-batch` at a place the usage topic does not have: refused at once with the reason,
 * never after the read's whole timeout (an offset past the end waits for a write that may not come).
 */
describe('skip-batch at a place the topic does not have', () => {
  let admin: Admin;
  let topic: string;
  let skip: SkipUndecodableBatchOptions;

  beforeAll(async () => {
    admin = createTestKafka(uniqueName('skip-place-admin')).admin();
    await admin.connect();
    topic = await createTestTopic(admin, { prefix: 'skip_place', partitions: 2 });
    const producer = createTestKafka(uniqueName('skip-place-producer')).producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: ['a', 'b', 'c'].map((value) => ({ partition: 0, value })) });
    await producer.disconnect();
    // Offset 0 of partition 0 as retention leaves it: deleted. kafkajs finds the partition's
    // leader for deleteTopicRecords only in metadata it has fetched.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '1' }] });
    skip = {
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('skip-place') },
      groupId: uniqueName('skip_place_group'),
      topic,
      dlqTopic: uniqueName('skip_place_dlq_unused'),
      partition: 0,
      offset: '0',
      // The read's own default: a refusal that waited for it would fail this test's deadline.
      timeoutMs: 30_000,
    };
  });

  afterAll(async () => {
    await deleteTopics(admin, [topic]).catch(() => undefined);
    await admin.disconnect();
  });

  /** The refusal, and how long it took. */
  async function refusal(options: SkipUndecodableBatchOptions): Promise<{ error: unknown; ms: number }> {
    const started = Date.now();
    const error = await skipUndecodableBatch(options).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    return { error, ms: Date.now() - started };
  }

  it.each([
    ['past the end of its partition', { offset: '3' }, `there is no offset 3 in TOPIC/0: the partition ends before it (next offset 3)`],
    ['far past the end', { offset: '999999' }, `there is no offset 999999 in TOPIC/0: the partition ends before it (next offset 3)`],
    ['in an empty partition', { partition: 1, offset: '0' }, `there is no offset 0 in TOPIC/1: the partition ends before it (next offset 0)`],
    ['deleted by retention', { offset: '0' }, `there is no offset 0 in TOPIC/0: the partition's retention has deleted it (earliest offset 1)`],
    ['of a partition the topic has not', { partition: 2, offset: '0' }, 'TOPIC has 2 partitions (0..1): there is no partition 2'],
  ])('refuses an offset %s at once, saying why', async (_case, place, message) => {
    const { error, ms } = await refusal({ ...skip, ...place });
    expect(error).toBeInstanceOf(SkipBatchRefusedError);
    expect((error as Error).message).toBe(message.replace('TOPIC', topic));
    expect(ms).toBeLessThan(10_000);
  });
});
