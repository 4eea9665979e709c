import { Kafka, logLevel } from 'kafkajs';
import { createTestKafka } from './createTestKafka';
import { createTestTopic, deleteTopics } from './createTestTopic';
import { startKafkaProxy } from './kafkaProxy';
import { stackConfig } from './stackConfig';

describe('Kafka proxy (test support)', () => {
  it('carries every connection of a client, so stalling it cuts the client off, and can swallow produce requests', async () => {
    const admin = createTestKafka('kafka-proxy-admin').admin();
    await admin.connect();
    const topic = await createTestTopic(admin, { prefix: 'kafka_proxy' });
    const proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    const kafka = new Kafka({ clientId: 'kafka-proxy', brokers: [proxy.broker], logLevel: logLevel.NOTHING, requestTimeout: 1_000, retry: { retries: 0 } });
    const producer = kafka.producer({ retry: { retries: 0 } });
    try {
      await producer.connect();
      await producer.send({ topic, messages: [{ value: 'through the proxy' }] });
      // The broker's advertised address was rewritten: the client knows only the proxy.
      const describe = kafka.admin();
      await describe.connect();
      const { brokers } = await describe.describeCluster();
      await describe.disconnect();
      expect(brokers.map((broker) => `${broker.host}:${broker.port}`)).toEqual([proxy.broker]);

      proxy.swallow([0]);
      await expect(producer.send({ topic, messages: [{ value: 'swallowed' }] })).rejects.toThrow();
      proxy.swallow([]);

      proxy.stall();
      await expect(producer.send({ topic, messages: [{ value: 'stalled' }] })).rejects.toThrow();
      proxy.resume();

      const offsets = await admin.fetchTopicOffsets(topic);
      // Only the first message reached the broker.
      expect(offsets.map((offset) => offset.high)).toEqual(['1']);
    } finally {
      await producer.disconnect().catch(() => undefined);
      await proxy.close();
      await deleteTopics(admin, [topic]);
      await admin.disconnect();
    }
  });
});
