import { readTopicToEnds } from '@tally/kafka';
import { createTestKafka, createTestTopic, deleteTopics, stackConfig, uniqueName } from '@tally/test-support';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { REDRIVEN_FROM_HEADER, redriveDeadLetters, RedriveLetterTooLargeError } from './redriveDeadLetters';

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

  it('ends the run at a letter larger than the usage topic takes, naming it, after the letters before it', async () => {
    const { usageTopic, dlqTopic } = await smallUsageTopic();
    await dead(dlqTopic, [letterOf(usageTopic, 'small-0', 100), letterOf(usageTopic, 'small-1', 100), letterOf(usageTopic, 'large', 30_000), letterOf(usageTopic, 'small-3', 100)]);
    const sentOffsets: string[] = [];
    const run = redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive-parts') },
      dlqTopic,
      usageTopic,
      errorCodes: 'all',
      onSent: (_partition, offsets) => {
        sentOffsets.push(...offsets);
      },
    });
    await expect(run).rejects.toThrow(RedriveLetterTooLargeError);
    await expect(run).rejects.toThrow(`the dead letter at 0:2 is larger than ${usageTopic} takes (its max.message.bytes)`);
    // The part before it is on the usage topic, and marked so; nothing after it went.
    expect(sentOffsets).toEqual(['0', '1']);
    expect((await admin.fetchTopicOffsets(usageTopic))[0]!.high).toBe('2');
  });
});
