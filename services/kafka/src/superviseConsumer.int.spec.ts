import { createTestKafka, createTestTopic, deleteTopics, stackConfig, startKafkaProxy, uniqueName, waitFor, type KafkaProxy } from '@tally/test-support';
import { logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import pino from 'pino';
import { createKafka } from './createKafka';
import { superviseConsumer } from './superviseConsumer';

jest.setTimeout(90_000);

/** Kafka's FindCoordinator request's API key. */
const FIND_COORDINATOR = 10;

/**
 * A consumer whose connection closes while it asks for its group's coordinator, on a real broker
 * through a proxy: kafkajs crashes it with a non-retriable KafkaJSGroupCoordinatorNotFound and
 * does not restart it. Supervised, it runs again and consumes, and the worker is not failed.
 */
describe('superviseConsumer against a real broker', () => {
  let admin: Admin;
  let producer: Producer;
  let proxy: KafkaProxy;
  let consumer: Consumer | undefined;
  const topics: string[] = [];

  beforeAll(async () => {
    const kafka = createTestKafka(uniqueName('supervise'));
    admin = kafka.admin();
    producer = kafka.producer();
    await Promise.all([admin.connect(), producer.connect()]);
    proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
  });

  afterAll(async () => {
    proxy?.swallow([]);
    await consumer?.disconnect();
    await deleteTopics(admin, topics).catch(() => undefined);
    await Promise.all([producer?.disconnect(), admin?.disconnect()]);
    await proxy?.close();
  });

  it('runs a consumer again that kafkajs left after losing its coordinator, and it consumes', async () => {
    const topic = await createTestTopic(admin, { prefix: 'supervise' });
    topics.push(topic);
    const kafka = createKafka({ clientId: uniqueName('supervised'), brokers: [proxy.broker], logLevel: logLevel.NOTHING });
    consumer = kafka.consumer({ groupId: uniqueName('supervised'), allowAutoTopicCreation: false });
    const crashes: Array<{ name: string; restart: boolean }> = [];
    consumer.on(consumer.events.CRASH, ({ payload }) => crashes.push({ name: payload.error.name, restart: payload.restart }));
    const failed: unknown[] = [];
    const supervised = superviseConsumer(consumer, { logger: pino({ level: 'silent' }), fail: (error) => failed.push(error) });
    const seen: string[] = [];

    proxy.swallow([FIND_COORDINATOR]);
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const running = supervised.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) }, new AbortController().signal);
    // The request is held at the proxy; cutting its connection is what kafkajs's broker pool swallows.
    await waitFor(() => proxy.swallowedCount() > 0, { description: 'a FindCoordinator held at the proxy' });
    proxy.swallow([]);
    proxy.down();
    proxy.resume();
    await running;
    await waitFor(() => crashes.length > 0, { description: 'the crash' });
    expect(crashes[0]).toEqual({ name: 'KafkaJSGroupCoordinatorNotFound', restart: false });

    await producer.send({ topic, acks: -1, messages: [{ value: 'after the crash' }] });
    await waitFor(() => seen.includes('after the crash'), { description: 'the message consumed after the consumer ran again', timeoutMs: 60_000 });
    expect(failed).toEqual([]);
  });
});
