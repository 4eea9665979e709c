import { createTestTopic, deleteTopics, stackConfig, uniqueName } from '@tally/test-support';
import type { KafkaMessage } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createDeadLetterReader, DeadLetterNotFoundError, type DeadLetterReader } from './deadLetterReader';
import { DeadLettersUnavailableError } from './meteringErrors';
import { consumedAtLeast as consumed, createMeteringTestKit, USAGE_TIME, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';
import { createUsageEventDecoder } from './usageEventDecoder';

jest.setTimeout(120_000);

/** Reading one dead letter whole, against the real broker and registry, from letters the consumer wrote. */
describe('createDeadLetterReader', () => {
  let kit: MeteringTestKit;
  let reader: DeadLetterReader;
  /** The consumer's letters on the dead-letter topic, by the usage topic's offset they came from. */
  const letters = new Map<number, KafkaMessage>();
  const header = (letter: KafkaMessage, name: string) => letter.headers![name]!.toString();

  const readerOf = (brokers: readonly string[], dlqTopic = kit.dlqTopic, registryUrl = stackConfig.schemaRegistryUrl) =>
    createDeadLetterReader({
      kafka: { brokers, clientId: uniqueName('dead-letter-reader') },
      dlqTopic,
      decoder: createUsageEventDecoder({ registryUrl }),
    });

  beforeAll(async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.openBalance('acme', 'api', '10');
    const unknownSchema = Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0x01]), Buffer.from('body')]);
    await kit.produce([
      // Avro that decodes but is refused (an empty event name), with a text and a binary header,
      // and one without a value (length -1, as a Java producer sends a null; kafkajs's types leave it out).
      {
        key: 'acme',
        value: kit.avro({ ...usage('a1', 'acme'), event: '' }),
        headers: { traceparent: 'trace-a1', blob: Buffer.from([0xff, 0x00, 0xfe]), absent: null as unknown as string },
      },
      { key: 'acme', value: Buffer.from('{"id":"j1","customerId":"acme","timestamp":1}') },
      { key: 'acme', value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
      { key: 'acme', value: unknownSchema },
    ]);
    const consumer = await kit.startConsumer({ maxBackoffMs: 200 });
    await consumed(consumer, 4);
    for (const letter of await kit.readTopic(kit.dlqTopic, 4)) letters.set(Number(header(letter, DEAD_LETTER_HEADERS.sourceOffset)), letter);
    reader = readerOf(stackConfig.kafkaBrokers);
  });

  afterAll(async () => {
    await kit?.close();
  });

  const read = (sourceOffset: number) => reader.read(0, letters.get(sourceOffset)!.offset);

  it('reads a letter whole: its fields, every header in order, the value and the Avro record in it', async () => {
    const letter = await read(0);
    expect(letter).toMatchObject({
      partition: 0,
      offset: letters.get(0)!.offset,
      errorCode: 'invalid_usage_event',
      sourceTopic: kit.topic,
      sourceOffset: '0',
      key: 'acme',
      storedAt: new Date(Number(letters.get(0)!.timestamp)).toISOString(),
    });
    // The producer's headers as sent, the binary one in base64, the one without a value without
    // one (not the text "null", which a producer could have sent), then the dead letter's own.
    expect(letter.headers.slice(0, 3)).toEqual([
      { name: 'traceparent', value: 'trace-a1', encoding: 'utf8' },
      { name: 'blob', value: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), encoding: 'base64' },
      { name: 'absent', value: null, encoding: 'utf8' },
    ]);
    expect(letter.headers.map((entry) => entry.name)).toEqual(expect.arrayContaining([DEAD_LETTER_HEADERS.reason, DEAD_LETTER_HEADERS.errorCode, DEAD_LETTER_HEADERS.sourceOffset]));
    expect(letter.headers.find((entry) => entry.name === DEAD_LETTER_HEADERS.reason)?.value).toBe(letter.reason);
    const sent = kit.avro({ ...usage('a1', 'acme'), event: '' });
    expect(letter.value).toEqual({
      bytes: sent.length,
      base64: sent.toString('base64'),
      format: 'avro',
      schemaId: kit.usageSchemaId,
      record: { id: 'a1', customerId: 'acme', event: '', timestamp: USAGE_TIME, properties: {} },
      unreadable: null,
    });
  });

  it('parses a JSON value, and says why a value holds no record it can read', async () => {
    expect((await read(1)).value).toMatchObject({ format: 'json', schemaId: null, record: { id: 'j1', customerId: 'acme', timestamp: 1 }, unreadable: null });
    const garbage = await read(2);
    expect(garbage.errorCode).toBe('undecodable_usage_event');
    expect(garbage.value).toEqual({
      bytes: 4,
      base64: Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64'),
      format: null,
      schemaId: null,
      record: null,
      unreadable: expect.stringContaining('first byte 0xde'),
    });
    const unknown = await read(3);
    expect(unknown.errorCode).toBe('unknown_schema_id');
    expect(unknown.value).toMatchObject({ format: null, record: null, unreadable: expect.stringContaining(String(0x7fffff01)) });
  });

  it('answers not found past the end, before the start and on a partition the topic lacks', async () => {
    const end = (await kit.admin.fetchTopicOffsets(kit.dlqTopic))[0]!.high;
    await expect(reader.read(0, end)).rejects.toThrow(DeadLetterNotFoundError);
    await expect(reader.read(0, end)).rejects.toThrow(`no dead letter at partition 0, offset ${end} of ${kit.dlqTopic}: the partition ends before it`);
    await expect(reader.read(3, '0')).rejects.toThrow('the topic has no such partition');
  });

  it('answers not found for a letter retention has deleted, and reads the one after it', async () => {
    // A topic of its own: the other tests' letters stay where they are, in whatever order they run.
    const topic = await createTestTopic(kit.admin, { prefix: 'dlq_retention' });
    const producer = kit.kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ value: 'first' }, { value: '{"id":"second"}' }] });
      // kafkajs finds the partition's leader for deleteTopicRecords only in metadata it has fetched.
      await kit.admin.fetchTopicMetadata({ topics: [topic] });
      await kit.admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '1' }] });
      const retained = readerOf(stackConfig.kafkaBrokers, topic);
      await expect(retained.read(0, '0')).rejects.toThrow("the partition's retention has deleted it (earliest offset 1)");
      expect(await retained.read(0, '1')).toMatchObject({ offset: '1', errorCode: null, valuePreview: '{"id":"second"}', value: { format: 'json', record: { id: 'second' } } });
    } finally {
      await producer.disconnect();
      await deleteTopics(kit.admin, [topic]);
    }
  });

  it('answers unavailable, a transient error, when Kafka does not answer', async () => {
    // Nothing listens on port 1: every connection is refused, and kafkajs gives up after its retries.
    const failing = await readerOf(['127.0.0.1:1'])
      .read(0, '0')
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failing).toBeInstanceOf(DeadLettersUnavailableError);
    // Kafka's own words (the brokers' addresses) stay with the cause, for the log; the client reads ours.
    expect(failing).toMatchObject({ retriable: true, message: 'the dead-letter topic could not be read; retry shortly' });
    expect((failing as Error).cause).toBeInstanceOf(Error);
  });

  it('still shows the letter when the registry does not answer, saying so where the record would be', async () => {
    const withoutRegistry = readerOf(stackConfig.kafkaBrokers, kit.dlqTopic, 'http://127.0.0.1:1');
    const letter = await withoutRegistry.read(0, letters.get(0)!.offset);
    expect(letter.errorCode).toBe('invalid_usage_event');
    expect(letter.value).toMatchObject({ format: null, record: null, unreadable: expect.stringContaining(`schema registry request for id ${kit.usageSchemaId} failed`) });
  });
});
