import type { UsageEvent } from '@tally/domain';
import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName, waitFor } from '@tally/test-support';
import { ConfigResourceTypes, type Admin, type Consumer } from 'kafkajs';
import pino from 'pino';
import { createUsagePublisher, type UsagePublisher, type UsageToPublish } from './usagePublisher';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const MAX_MESSAGE_BYTES = 20_000;

/**
 * One request's events (up to 5 MiB through POST /v1/usage-events) are more than one broker
 * message may hold (max.message.bytes, 1 MiB by default): they go in parts the topic takes, in
 * order, and an event larger than the topic takes is refused alone rather than failing the
 * request as retriable for ever.
 */
describe('the usage publisher on a topic with a small max.message.bytes', () => {
  let admin: Admin;
  let topic: string;
  let publisher: UsagePublisher;
  let consumer: Consumer | undefined;

  beforeAll(async () => {
    admin = createTestKafka(uniqueName('publisher-admin')).admin();
    await admin.connect();
  });

  beforeEach(async () => {
    topic = await createTestTopic(admin, { prefix: 'usage_small', partitions: 2 });
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(MAX_MESSAGE_BYTES) }] }],
    });
    publisher = createUsagePublisher({ kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('publisher') }, topic, logger });
  });

  afterEach(async () => {
    await publisher.stop();
    await consumer?.disconnect();
    consumer = undefined;
    await deleteTopics(admin, [topic]);
  });

  afterAll(async () => {
    await admin.disconnect();
  });

  const event = (id: string, customerId: string, bytes: number): UsageToPublish => ({
    usage: { id, customerId, event: 'api_call', timestamp: '2026-03-01T12:00:00.000Z', properties: {} } as unknown as UsageEvent,
    value: Buffer.from(JSON.stringify({ id, customerId, event: 'api_call', timestamp: '2026-03-01T12:00:00Z', properties: { note: 'x'.repeat(bytes) } })),
  });

  /** The ids on the topic, per customer key, in offset order. */
  async function idsOnTopic(expected: number): Promise<Map<string, string[]>> {
    const seen = new Map<string, string[]>();
    let count = 0;
    consumer = createTestKafka(uniqueName('publisher-reader')).consumer({ groupId: uniqueName('publisher-reader') });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const key = message.key!.toString();
        seen.set(key, [...(seen.get(key) ?? []), (JSON.parse(message.value!.toString()) as { id: string }).id]);
        count += 1;
      },
    });
    await waitFor(() => count >= expected, { description: `${expected} events on the topic`, timeoutMs: 60_000 });
    return seen;
  }

  it('publishes a request larger than one message may be, in parts, each customer in order', async () => {
    // 200 events of about 1 KB, two customers interleaved: 10 times the topic's limit.
    const events = Array.from({ length: 200 }, (_, i) => event(`e-${i}`, i % 2 === 0 ? 'alice' : 'bob', 1_000));

    expect(await publisher.publish(events)).toEqual({ refused: [] });

    const ids = await idsOnTopic(200);
    expect(ids.get('alice')).toEqual(events.filter((_, i) => i % 2 === 0).map(({ usage }) => usage.id));
    expect(ids.get('bob')).toEqual(events.filter((_, i) => i % 2 === 1).map(({ usage }) => usage.id));
  });

  it('refuses an event larger than the topic takes alone, naming it, and publishes the others', async () => {
    const events = [event('small-1', 'alice', 100), event('huge', 'alice', 2 * MAX_MESSAGE_BYTES), event('small-2', 'alice', 100)];

    const { refused } = await publisher.publish(events);

    expect(refused).toHaveLength(1);
    expect(refused[0]!.index).toBe(1);
    expect(refused[0]!.error).toMatchObject({ code: 'usage_event_too_large', retriable: false });
    expect(refused[0]!.error.message).toMatch(/larger than the usage topic takes/);
    expect((await idsOnTopic(2)).get('alice')).toEqual(['small-1', 'small-2']);
  });
});
