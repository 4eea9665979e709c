/**
 * The plumbing under everything else, end to end on the real stack: the usage-event schema
 * registers in the schema registry, Avro-encoded events go through Kafka and come back out of a
 * consumer group byte for byte, and decode to what was sent.
 */
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import type { Admin, Consumer, Producer } from 'kafkajs';
import { topicValueSubject, usageEventAvroSchema, type UsageEventAvroRecord } from '@tally/schemas';
import { createTestKafka, createTestRegistry, createTestTopic, deleteTopics, uniqueName, waitFor } from '@tally/test-support';

const events: UsageEventAvroRecord[] = [
  { id: 'evt-1', customerId: 'cus-a', event: 'api_call', timestamp: 1_767_225_600_000, properties: {} },
  {
    id: 'evt-2',
    customerId: 'cus-b',
    event: 'api_call',
    timestamp: 1_767_225_600_001,
    properties: { endpoint: { string: '/v1/things' }, cached: { boolean: false }, bytes: { long: 1_048_576 } },
  },
  { id: 'evt-3', customerId: 'cus-a', event: 'gpu_seconds', timestamp: 1_767_225_660_000, properties: { seconds: { double: 12.5 } } },
  { id: 'evt-4', customerId: 'cus-c', event: 'storage', timestamp: 1_767_225_720_000, properties: { region: null } },
  { id: 'evt-5', customerId: 'cus-b', event: 'api_call', timestamp: 1_767_225_780_000, properties: { retries: { long: 0 } } },
];

// Starting a consumer group and deleting a topic take seconds on a shared 2-core machine.
jest.setTimeout(120_000);

describe('local stack plumbing', () => {
  const kafka = createTestKafka('plumbing-test');
  const registry = createTestRegistry();
  const admin: Admin = kafka.admin();
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true });
  const groupId = uniqueName('plumbing');
  let consumer: Consumer | undefined;
  let topic: string;

  beforeAll(async () => {
    await admin.connect();
    topic = await createTestTopic(admin, { prefix: 'plumbing', partitions: 3 });
    await producer.connect();
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await producer.disconnect();
    await deleteTopics(admin, [topic]);
    if (consumer) await admin.deleteGroups([groupId]);
    await admin.disconnect();
  });

  it('registers the usage-event schema once, whatever its JSON formatting', async () => {
    const subject = topicValueSubject(`${topic}-canonical`);
    const compact = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) }, { subject });
    const indented = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema, null, 2) },
      { subject },
    );

    expect(indented.id).toBe(compact.id);
  });

  it('carries Avro usage events through Kafka and a consumer group, byte for byte', async () => {
    const { id: schemaId } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(usageEventAvroSchema) },
      { subject: topicValueSubject(topic) },
    );
    const sent = new Map<string, Buffer>();
    for (const event of events) sent.set(event.id, await registry.encode(schemaId, event));
    await producer.send({
      topic,
      messages: events.map((event) => ({ key: event.customerId, value: sent.get(event.id) ?? null })),
    });

    const received: Buffer[] = [];
    // A short fetch wait lets `disconnect` return promptly instead of finishing a 5 s long poll.
    consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 250 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value) received.push(message.value);
      },
    });
    await waitFor(() => received.length >= events.length, {
      description: `${events.length} usage events on ${topic}`,
      timeoutMs: 60_000,
    });

    expect(received).toHaveLength(events.length);
    const decoded = new Map<string, UsageEventAvroRecord>();
    for (const value of received) {
      // Confluent wire format: magic byte 0, then the schema id as a 4-byte big-endian integer.
      expect(value.readUInt8(0)).toBe(0);
      expect(value.readInt32BE(1)).toBe(schemaId);
      const record = (await registry.decode(value)) as UsageEventAvroRecord;
      expect(value.equals(sent.get(record.id) ?? Buffer.alloc(0))).toBe(true);
      decoded.set(record.id, record);
    }
    expect(events.map((event) => decoded.get(event.id))).toEqual(events);
  });
});
