import { stackConfig, uniqueName, waitFor } from '@tally/test-support';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createDeadLetterReader } from './deadLetterReader';
import { consumedAtLeast, createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';
import { createUsageEventDecoder } from './usageEventDecoder';

jest.setTimeout(120_000);

/**
 * A usage event nested 100,000 levels deep (200 KB of brackets, well inside a Kafka message) in
 * each JSON form the topic carries. JSON.parse reads it (iteratively); every usage event nested
 * deeper than 64 levels is refused where it is read (parseUsageEvent, usageEventFromJson), so
 * the consumer dead-letters it with the reason, as the API refuses it, and meters what follows.
 */
describe('a usage event nested too deep on the usage topic', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('is dead-lettered with the reason, in Tally JSON and both CloudEvent modes, and the usage behind it is metered', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const attributes = '"specversion":"1.0","source":"/deep","type":"api_call","subject":"acme","time":"2026-03-01T12:00:00Z"';
    await kit.produce([
      { key: 'acme', value: Buffer.from(`{"id":"n1","customerId":"acme","event":"api_call","timestamp":"2026-03-01T12:00:00Z","properties":{"blob":${deep}}}`) },
      { key: 'acme', value: Buffer.from(`{${attributes},"id":"s1","ext":${deep}}`) },
      {
        key: 'acme',
        value: Buffer.from(`{"blob":${deep}}`),
        headers: { ce_specversion: '1.0', ce_id: 'b1', ce_source: '/deep', ce_type: 'api_call', ce_subject: 'acme', ce_time: '2026-03-01T12:00:00Z', 'content-type': 'application/json' },
      },
      { key: 'acme', value: kit.json(usage('ok-1', 'acme')) },
    ]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 4, 60_000);
    await waitFor(async () => (await kit.balanceOf(acme)) === '99', { description: 'the event behind them metered', timeoutMs: 60_000 });
    expect(consumer.counters()).toMatchObject({ matched: 1, deadLettered: 3 });
    expect(consumer.state()).toBe('running');
    const letters = await kit.readTopic(kit.dlqTopic, 3);
    expect(letters.map((letter) => [letter.headers![DEAD_LETTER_HEADERS.errorCode]!.toString(), letter.headers![DEAD_LETTER_HEADERS.reason]!.toString()])).toEqual(
      Array.from({ length: 3 }, () => ['invalid_usage_event', expect.stringMatching(/nests objects and arrays deeper than 64 levels/)]),
    );
    // Read whole, as the console and `tally dead-letter` show it: too deep to show as JSON, said
    // so (not a stack overflow's message), its format known and its bytes whole.
    const reader = createDeadLetterReader({ kafka: { brokers: stackConfig.kafkaBrokers, clientId: uniqueName('deep-letter-reader') }, dlqTopic: kit.dlqTopic, decoder: createUsageEventDecoder({ registryUrl: stackConfig.schemaRegistryUrl }) });
    const whole = await reader.read(0, letters[0]!.offset);
    expect(whole.value).toMatchObject({ format: 'json', record: null, unreadable: expect.stringMatching(/^the record nests too deeply to show as JSON/) });
    expect(Buffer.from(whole.value!.base64, 'base64').toString()).toContain('"id":"n1"');
  });
});
