import { stackConfig, uniqueName } from '@tally/test-support';
import type { KafkaMessage } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { consumedAtLeast as consumed, createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';
import { REDRIVEN_FROM_HEADER, redriveDeadLetters, type RedriveDeadLettersOptions } from './redriveDeadLetters';

jest.setTimeout(180_000);

/** `tally redrive` against the real broker and a running consumer: letters go back and are charged once. */
describe('redriving dead letters', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  const endOffsets = async (topic: string) => (await kit.admin.fetchTopicOffsets(topic)).map(({ partition, high }) => `${partition}:${high}`);

  it('sends back the chosen letters once their cause is fixed; they are charged once however often they are sent', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    const erin = await kit.openBalance('erin', 'api', '10');
    await kit.produce([
      { key: 'erin', value: kit.avro(usage('e1', 'erin')), headers: { traceparent: 'trace-e1' } },
      { key: 'dave', value: kit.avro(usage('d1', 'dave')), headers: { traceparent: 'trace-d1' } },
      { key: 'dave', value: Buffer.from('{"not": "usage"') },
      { key: 'dave', value: kit.avro(usage('d2', 'dave')) },
    ]);
    const consumer = await kit.startConsumer({ balanceOpenWaitMs: 1000, maxBackoffMs: 200 });
    await consumed(consumer, 4);
    // In the order of their source offsets (the undecodable one is dead-lettered before the others' wait ends).
    const sourceOffset = (letter: KafkaMessage) => Number(letter.headers![DEAD_LETTER_HEADERS.sourceOffset]!.toString());
    const letters = (await kit.readTopic(kit.dlqTopic, 3)).sort((a, b) => sourceOffset(a) - sourceOffset(b));
    expect(letters.map((letter) => letter.headers![DEAD_LETTER_HEADERS.errorCode]!.toString())).toEqual([
      'balance_not_opened',
      'undecodable_usage_event',
      'balance_not_opened',
    ]);
    expect(await kit.balanceOf(erin)).toBe('9');

    const redrive = (overrides: Partial<RedriveDeadLettersOptions>) =>
      redriveDeadLetters({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
        dlqTopic: kit.dlqTopic,
        usageTopic: kit.topic,
        errorCodes: ['balance_not_opened'],
        ...overrides,
      });

    // A dry run counts by code and sends nothing.
    const usageEnds = await endOffsets(kit.topic);
    expect(await redrive({ errorCodes: 'all', dryRun: true })).toEqual({
      read: 3,
      republished: 3,
      republishedByErrorCode: { balance_not_opened: 2, undecodable_usage_event: 1 },
      skipped: { not_selected: 0, raw_batch: 0, cut: 0, other_source: 0, too_large: 0 },
      notFound: [],
      tooLarge: [],
    });
    expect(await endOffsets(kit.topic)).toEqual(usageEnds);

    const dave = await kit.openBalance('dave', 'api', '10');
    expect(await redrive({})).toEqual({
      read: 3,
      republished: 2,
      republishedByErrorCode: { balance_not_opened: 2 },
      skipped: { not_selected: 1, raw_batch: 0, cut: 0, other_source: 0, too_large: 0 },
      notFound: [],
      tooLarge: [],
    });
    await consumed(consumer, 6);
    expect(await kit.balanceOf(dave)).toBe('8');
    // As the producer sent it, with where the letter was; nothing of the dead-lettering.
    const sentBack = (await kit.readTopic(kit.topic, 6)).slice(4);
    expect(sentBack.map((message) => message.value)).toEqual([letters[0]!.value, letters[2]!.value]);
    expect(sentBack[0]!.key!.toString()).toBe('dave');
    expect(Object.keys(sentBack[0]!.headers!).sort()).toEqual([REDRIVEN_FROM_HEADER, 'traceparent']);
    expect(sentBack[0]!.headers!.traceparent!.toString()).toBe('trace-d1');
    expect(sentBack.map((message) => message.headers![REDRIVEN_FROM_HEADER]!.toString())).toEqual([`0:${letters[0]!.offset}`, `0:${letters[2]!.offset}`]);

    // Sent back again: taken, charged nothing more.
    expect(await redrive({})).toMatchObject({ read: 3, republished: 2 });
    await consumed(consumer, 8);
    expect(await kit.balanceOf(dave)).toBe('8');
    expect(consumer.counters()).toMatchObject({ deadLettered: 3 });

    // A letter that fails again is dead-lettered anew, saying where it was sent back from.
    expect(await redrive({ errorCodes: ['undecodable_usage_event'] })).toMatchObject({ read: 3, republished: 1 });
    const [again] = (await kit.readTopic(kit.dlqTopic, 4)).slice(3);
    expect(again!.headers![DEAD_LETTER_HEADERS.errorCode]!.toString()).toBe('undecodable_usage_event');
    expect(again!.headers![REDRIVEN_FROM_HEADER]!.toString()).toBe(`0:${letters[1]!.offset}`);
    expect(await kit.balanceOf(dave)).toBe('8');
  });

  it('charges nothing twice for a letter whose usage its producer has meanwhile sent again', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'fay-api', customerId: 'fay', productId: 'api' });
    // Dead-lettered: the balance is registered but not opened yet.
    await kit.produce([{ key: 'fay', value: kit.avro(usage('f1', 'fay')) }]);
    const consumer = await kit.startConsumer({ balanceOpenWaitMs: 1000, maxBackoffMs: 200 });
    await consumed(consumer, 1);
    expect(consumer.counters()).toMatchObject({ deadLettered: 1 });
    const fay = await kit.openBalance('fay', 'api', '10');
    // The producer, seeing no charge, sends the same usage again (same id): charged once now.
    await kit.produce([{ key: 'fay', value: kit.avro(usage('f1', 'fay')) }]);
    await consumed(consumer, 2);
    expect(await kit.balanceOf(fay)).toBe('9');
    // Then the operator sends the letter back: taken, and charged nothing more.
    expect(
      await redriveDeadLetters({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
        dlqTopic: kit.dlqTopic,
        usageTopic: kit.topic,
        errorCodes: ['balance_not_opened'],
      }),
    ).toMatchObject({ read: 1, republished: 1 });
    await consumed(consumer, 3);
    expect(await kit.balanceOf(fay)).toBe('9');
    expect(consumer.counters()).toMatchObject({ deadLettered: 1 });
  });

  it('reads the letters there were when it started, not what it sends meanwhile', async () => {
    kit = await createMeteringTestKit();
    // Letters whose source is the very topic they are in: each one sent back lands behind them.
    const letter = (index: number) => ({
      key: `customer-${index}`,
      value: Buffer.from(`{"id":"u${index}"}`),
      headers: { [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: kit.topic },
    });
    await kit.produce([0, 1, 2].map(letter));
    const result = await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
      dlqTopic: kit.topic,
      usageTopic: kit.topic,
      errorCodes: 'all',
    });
    expect(result).toMatchObject({ read: 3, republished: 3 });
    expect(await endOffsets(kit.topic)).toEqual(['0:6']);
  });

  it('names the picked letters it did not find: past the end of their partition, or of a partition the topic has not', async () => {
    kit = await createMeteringTestKit();
    await kit.produce([0, 1].map((index) => ({
      key: `customer-${index}`,
      value: Buffer.from(`{"id":"u${index}"}`),
      headers: { [DEAD_LETTER_HEADERS.errorCode]: 'balance_not_opened', [DEAD_LETTER_HEADERS.sourceTopic]: kit.topic },
    })));
    const result = await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
      dlqTopic: kit.topic,
      usageTopic: kit.topic,
      errorCodes: 'all',
      letters: ['0:1', '0:5', '7:0'],
      dryRun: true,
    });
    expect(result).toMatchObject({ read: 1, republished: 1, notFound: ['0:5', '7:0'] });
    // Only places of letters not there: none when every pick is found, or nothing is picked.
    expect(await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
      dlqTopic: kit.topic,
      usageTopic: kit.topic,
      errorCodes: 'all',
      letters: ['0:0'],
      dryRun: true,
    })).toMatchObject({ read: 1, notFound: [] });
  });

  it('counts letters by any error code, one named like an object member (constructor, __proto__) too', async () => {
    kit = await createMeteringTestKit();
    // Tally writes the codes it dead-letters with; a letter written by hand may carry any.
    const codes = ['constructor', '__proto__', 'toString', 'constructor'];
    await kit.produce(codes.map((code, index) => ({
      key: `customer-${index}`,
      value: Buffer.from(`{"id":"u${index}"}`),
      headers: { [DEAD_LETTER_HEADERS.errorCode]: code, [DEAD_LETTER_HEADERS.sourceTopic]: kit.topic },
    })));
    const result = await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
      dlqTopic: kit.topic,
      usageTopic: kit.topic,
      errorCodes: 'all',
      dryRun: true,
    });
    expect(result).toMatchObject({ read: 4, republished: 4 });
    expect(Object.entries(result.republishedByErrorCode).sort()).toEqual([['__proto__', 1], ['constructor', 2], ['toString', 1]]);
  });

  it('reads nothing and sends nothing from an empty dead-letter topic', async () => {
    kit = await createMeteringTestKit();
    expect(await redriveDeadLetters({
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('redrive') },
      dlqTopic: kit.dlqTopic,
      usageTopic: kit.topic,
      errorCodes: 'all',
    })).toEqual({ read: 0, republished: 0, republishedByErrorCode: {}, skipped: { not_selected: 0, raw_batch: 0, cut: 0, other_source: 0, too_large: 0 }, notFound: [], tooLarge: [] });
  });
});
