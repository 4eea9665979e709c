import { createTestKafka, createTestTopic, deleteTopics, uniqueName } from '@tally/test-support';
import type { Admin, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { readTopicToEnds } from './readTopicToEnds';

jest.setTimeout(90_000);

describe('readTopicToEnds', () => {
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;
  const topics: string[] = [];

  beforeAll(async () => {
    kafka = createTestKafka(uniqueName('read-to-ends'));
    admin = kafka.admin();
    producer = kafka.producer({ idempotent: true });
    await Promise.all([admin.connect(), producer.connect()]);
  });

  afterAll(async () => {
    await deleteTopics(admin, topics).catch(() => undefined);
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
  });

  const purposeGroups = async (purpose: string) => (await admin.listGroups()).groups.filter((group) => group.groupId.startsWith(purpose));

  it('hands over every partition in order up to the ends it started with, not what is written meanwhile, and leaves no group', async () => {
    const topic = await createTestTopic(admin, { prefix: 'read_to_ends', partitions: 3 });
    topics.push(topic);
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 30 }, (_, index) => ({ key: `k${index % 5}`, value: String(index) })) });
    const purpose = uniqueName('read-to-ends');
    const read = new Map<number, string[]>();
    let writtenMeanwhile = 0;
    await readTopicToEnds({
      kafka,
      topic,
      purpose,
      eachBatch: async (partition, messages) => {
        read.set(partition, [...(read.get(partition) ?? []), ...messages.map((message: KafkaMessage) => message.value!.toString())]);
        // Each batch writes as many behind the ends again: a read to the current end would never finish.
        await producer.send({ topic, acks: -1, messages: messages.map((message) => ({ key: message.key, value: `again-${message.value!.toString()}` })) });
        writtenMeanwhile += messages.length;
      },
    });
    const values = [...read.values()].flat();
    expect(values.sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 30 }, (_, index) => String(index)));
    for (const partitionValues of read.values()) expect(partitionValues).toEqual([...partitionValues].sort((a, b) => Number(a) - Number(b)));
    expect(writtenMeanwhile).toBe(30);
    expect(await purposeGroups(purpose)).toEqual([]);
  });

  it('fails with the error of the batch that failed, handed over once, and leaves no group', async () => {
    const topic = await createTestTopic(admin, { prefix: 'read_to_ends_fail', partitions: 1 });
    topics.push(topic);
    await producer.send({ topic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });
    const purpose = uniqueName('read-to-ends');
    let batches = 0;
    await expect(
      readTopicToEnds({
        kafka,
        topic,
        purpose,
        eachBatch: async () => {
          batches += 1;
          throw new Error('the usage topic refused');
        },
      }),
    ).rejects.toThrow('the usage topic refused');
    expect(batches).toBe(1);
    expect(await purposeGroups(purpose)).toEqual([]);
  });

  it('reaches an end that is a transaction marker, after committed and after aborted transactions', async () => {
    const topic = await createTestTopic(admin, { prefix: 'read_to_ends_tx', partitions: 1 });
    topics.push(topic);
    const transactional = kafka.producer({ transactionalId: uniqueName('read-to-ends-tx'), idempotent: true, maxInFlightRequests: 1 });
    await transactional.connect();
    try {
      await producer.send({ topic, acks: -1, messages: [{ value: 'plain' }] });
      const committed = await transactional.transaction();
      await committed.send({ topic, messages: [{ value: 'committed' }] });
      await committed.commit();
      // The topic ends with records no reader is handed and the marker that aborts them.
      const aborted = await transactional.transaction();
      await aborted.send({ topic, messages: [{ value: 'aborted' }] });
      await aborted.abort();
    } finally {
      await transactional.disconnect();
    }
    const values: string[] = [];
    await readTopicToEnds({
      kafka,
      topic,
      purpose: uniqueName('read-to-ends'),
      // One record batch per fetch, so the aborted records and the marker come in batches of
      // their own, which reach no eachBatch; the read must still see it has come to the end,
      // well before it would give up.
      maxBytes: 1,
      idleTimeoutMs: 20_000,
      eachBatch: async (_partition, messages) => void values.push(...messages.map((message) => message.value!.toString())),
    });
    expect(values).toEqual(['plain', 'committed']);
  });

  it('reads only the ranges asked for, of the partitions asked for, each once and in order', async () => {
    const topic = await createTestTopic(admin, { prefix: 'read_to_ends_only', partitions: 3 });
    topics.push(topic);
    for (const partition of [0, 1, 2]) {
      await producer.send({ topic, acks: -1, messages: Array.from({ length: 20 }, (_, index) => ({ partition, value: `${partition}/${index}` })) });
    }
    const purpose = uniqueName('read-to-ends');
    const read: string[] = [];
    await readTopicToEnds({
      kafka,
      topic,
      purpose,
      // Partition 1 past its end (offsets 0..19): nothing there; partition 2 not asked for.
      only: new Map([
        [0, { from: 5n, to: 8n }],
        [1, { from: 25n, to: 30n }],
      ]),
      eachBatch: async (partition, messages) => void read.push(...messages.map((message) => `${partition}@${message.offset}=${message.value!.toString()}`)),
    });
    expect(read).toEqual(['0@5=0/5', '0@6=0/6', '0@7=0/7', '0@8=0/8']);
    // A range reaching past the end stops at the end the partition had.
    const tail: string[] = [];
    await readTopicToEnds({ kafka, topic, purpose, only: new Map([[2, { from: 18n, to: 99n }]]), eachBatch: async (_partition, messages) => void tail.push(...messages.map((message) => message.offset)) });
    expect(tail).toEqual(['18', '19']);
    expect(await purposeGroups(purpose)).toEqual([]);
  });

  it('returns at once from an empty topic', async () => {
    const topic = await createTestTopic(admin, { prefix: 'read_to_ends_empty', partitions: 2 });
    topics.push(topic);
    const handed: number[] = [];
    await readTopicToEnds({ kafka, topic, purpose: uniqueName('read-to-ends'), eachBatch: async (partition) => void handed.push(partition) });
    expect(handed).toEqual([]);
  });
});
