import { readTopicToEnds } from '@tally/kafka';
import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName } from '@tally/test-support';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { MAX_PICKED_DEAD_LETTERS } from './deadLetterPlace';
import { REDRIVEN_FROM_HEADER, redriveDeadLetters } from './redriveDeadLetters';

jest.setTimeout(120_000);

const MAX_MESSAGE_BYTES = 20_000;

/**
 * A batch of letters the dead-letter topic hands over at once can be more than the usage topic
 * takes in one message (its max.message.bytes lower than the fetch): it goes back in parts, in
 * order, rather than failing at the same batch on every run.
 */
describe('redriving dead letters to a usage topic with a small max.message.bytes', () => {
  let admin: Admin;
  const topics: string[] = [];

  beforeAll(async () => {
    admin = createTestKafka(uniqueName('redrive-parts-admin')).admin();
    await admin.connect();
  });

  afterAll(async () => {
    await deleteTopics(admin, topics).catch(() => undefined);
    await admin.disconnect();
  });

  /** A usage topic taking at most MAX_MESSAGE_BYTES a message, and a dead-letter topic of its own. */
  async function smallUsageTopic(): Promise<{ usageTopic: string; dlqTopic: string }> {
    const usageTopic = await createTestTopic(admin, { prefix: 'usage_redrive_small' });
    const dlqTopic = await createTestTopic(admin, { prefix: 'dlq_redrive_small' });
    topics.push(usageTopic, dlqTopic);
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: usageTopic, configEntries: [{ name: 'max.message.bytes', value: String(MAX_MESSAGE_BYTES) }] }],
    });
    return { usageTopic, dlqTopic };
  }

  const letterOf = (usageTopic: string, id: string, bytes: number) => ({
    key: 'customer',
    value: Buffer.from(JSON.stringify({ id, note: 'x'.repeat(bytes) })),
    headers: { [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: usageTopic },
  });

  async function dead(dlqTopic: string, letters: { key: string; value: Buffer; headers: Record<string, string> }[]): Promise<void> {
    const producer = createTestKafka(uniqueName('redrive-parts-producer')).producer();
    await producer.connect();
    await producer.send({ topic: dlqTopic, acks: -1, messages: letters });
    await producer.disconnect();
  }

  it('sends a batch larger than one message may be in parts, every letter once, in order', async () => {
    const { usageTopic, dlqTopic } = await smallUsageTopic();
    // 40 letters of about 2 KB in one send: one batch of four times what the usage topic takes.
    const letters = Array.from({ length: 40 }, (_, i) => ({
      key: `customer-${i % 3}`,
      value: Buffer.from(JSON.stringify({ id: `u${i}`, note: 'x'.repeat(2_000) })),
      headers: { [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: usageTopic },
    }));
    await dead(dlqTopic, letters);

    const sentOffsets: string[] = [];
    const result = await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-parts') },
      dlqTopic,
      usageTopic,
      errorCodes: 'all',
      onSent: (_partition, offsets) => {
        sentOffsets.push(...offsets);
      },
    });

    expect(result).toMatchObject({ read: 40, republished: 40, republishedByErrorCode: { balance_not_opened: 40 } });
    expect(sentOffsets).toEqual(letters.map((_, i) => String(i)));
    const sentBack: { id: string; from: string }[] = [];
    await readTopicToEnds({
      kafka: createTestKafka(uniqueName('redrive-parts-reader')),
      topic: usageTopic,
      purpose: 'redrive-parts-test',
      eachBatch: async (_partition, messages) => {
        for (const message of messages) sentBack.push({ id: (JSON.parse(message.value!.toString()) as { id: string }).id, from: message.headers![REDRIVEN_FROM_HEADER]!.toString() });
      },
    });
    expect(sentBack).toEqual(letters.map((_, i) => ({ id: `u${i}`, from: `0:${i}` })));
  });

  it('leaves a letter larger than the usage topic takes where it is, naming it, and sends back the others; raised, the topic takes it by itself', async () => {
    const { usageTopic, dlqTopic } = await smallUsageTopic();
    await dead(dlqTopic, [letterOf(usageTopic, 'small-0', 100), letterOf(usageTopic, 'small-1', 100), letterOf(usageTopic, 'large', 30_000), letterOf(usageTopic, 'small-3', 100)]);
    const sentOffsets: string[] = [];
    const redrive = (letters?: string[]) =>
      redriveDeadLetters({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-parts') },
        dlqTopic,
        usageTopic,
        errorCodes: 'all',
        ...(letters !== undefined ? { letters } : {}),
        onSent: (_partition, offsets) => {
          sentOffsets.push(...offsets);
        },
      });
    const sentBackIds = async () => {
      const ids: string[] = [];
      await readTopicToEnds({
        kafka: createTestKafka(uniqueName('redrive-parts-reader')),
        topic: usageTopic,
        purpose: 'redrive-parts-test',
        eachBatch: async (_partition, messages) => {
          for (const message of messages) ids.push((JSON.parse(message.value!.toString()) as { id: string }).id);
        },
      });
      return ids;
    };

    expect(await redrive()).toEqual({
      read: 4,
      republished: 3,
      republishedByErrorCode: { balance_not_opened: 3 },
      skipped: { not_selected: 0, raw_batch: 0, cut: 0, other_source: 0, too_large: 1 },
      tooLarge: ['0:2'],
      notFound: [],
    });
    // Only what the usage topic has is marked sent back: the large letter stays one to send.
    expect(sentOffsets).toEqual(['0', '1', '3']);
    expect(await sentBackIds()).toEqual(['small-0', 'small-1', 'small-3']);

    // The operator raises the topic's limit and sends back the letter named, and only it.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: usageTopic, configEntries: [{ name: 'max.message.bytes', value: String(4 * MAX_MESSAGE_BYTES) }] }],
    });
    expect(await redrive(['0:2'])).toMatchObject({ republished: 1, skipped: { too_large: 0 }, tooLarge: [] });
    expect(sentOffsets).toEqual(['0', '1', '3', '2']);
    expect(await sentBackIds()).toEqual(['small-0', 'small-1', 'small-3', 'large']);
  });

  it('names at most MAX_PICKED_DEAD_LETTERS letters too large, as many as one run may pick, and counts them all', async () => {
    const { usageTopic, dlqTopic } = await smallUsageTopic();
    const count = MAX_PICKED_DEAD_LETTERS + 2;
    // Each in a send of its own: one batch of them would be more than the dead-letter topic takes.
    for (let i = 0; i < count; i += 1) await dead(dlqTopic, [letterOf(usageTopic, `large-${i}`, 30_000)]);
    const result = await redriveDeadLetters({ kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-parts') }, dlqTopic, usageTopic, errorCodes: 'all' });
    expect(result).toMatchObject({ read: count, republished: 0, skipped: { too_large: count } });
    expect(result.tooLarge).toEqual(Array.from({ length: MAX_PICKED_DEAD_LETTERS }, (_, i) => `0:${i}`));
  });
});
