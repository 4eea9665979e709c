import { capturedLog, stackConfig, waitFor } from '@tally/test-support';
import { avroLong, avroString } from './avroBytes.spec';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { consumedAtLeast, createMeteringTestKit, USAGE_TIME, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(120_000);

/** What the consumer reads is what the producer sent: bytes it cannot read exactly are dead letters, never read approximately. */
describe('usage decoded as its producer sent it', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('dead-letters usage ids that are not valid UTF-8 instead of charging three of them as one', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    const json = (idByte: number) =>
      Buffer.concat([Buffer.from('{"id":"evt-'), Buffer.from([idByte]), Buffer.from(`","customerId":"acme","event":"api_call","timestamp":${USAGE_TIME}}`)]);
    const binary = (idByte: number) => ({
      key: 'acme',
      value: Buffer.from('{}'),
      headers: {
        ce_specversion: '1.0',
        ce_id: Buffer.from([0x63, 0x2d, idByte]),
        ce_source: '/svc',
        ce_type: 'api_call',
        ce_subject: 'acme',
        ce_time: '2026-03-01T12:00:00Z',
        'content-type': 'application/json',
      },
    });
    await kit.produce([
      { key: 'acme', value: json(0xff) },
      { key: 'acme', value: json(0xfe) },
      { key: 'acme', value: json(0x80) },
      binary(0xff),
      binary(0xc3),
      { key: 'acme', value: kit.json({ id: 'evt-ok', customerId: 'acme', event: 'api_call', timestamp: USAGE_TIME }) },
    ]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 6);

    expect(consumer.counters()).toMatchObject({ matched: 1, deadLettered: 5 });
    expect(consumer.counters().skippedByReason.already_applied).toBe(0);
    expect(await kit.balanceOf(acme)).toBe('99');
    const letters = await kit.readTopic(kit.dlqTopic, 5);
    expect(letters.map((letter) => letter.headers![DEAD_LETTER_HEADERS.errorCode]!.toString())).toEqual(Array(5).fill('undecodable_usage_event'));
    for (const letter of letters) expect(letter.headers![DEAD_LETTER_HEADERS.reason]!.toString()).toMatch(/not valid UTF-8/);
  });

  it('meters an Avro event whose long property no rule reads is beyond 2^53', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    // The kit's avsc type cannot write such a long (it throws): the body is written by hand.
    const header = Buffer.alloc(5);
    header.writeInt32BE(kit.usageSchemaId, 1);
    const body = Buffer.concat([
      avroString('evt-ns'),
      avroString('acme'),
      avroString('api_call'),
      avroLong(BigInt(USAGE_TIME)),
      avroLong(1n),
      avroString('trace_ns'),
      avroLong(2n), // the union's long branch
      avroLong(1_772_366_400_000_000_000n),
      avroLong(0n),
    ]);
    await kit.produce([{ key: 'acme', value: Buffer.concat([header, body]) }]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 1);

    expect(consumer.counters()).toMatchObject({ matched: 1, deadLettered: 0 });
    expect(await kit.balanceOf(acme)).toBe('99');
  });

  it('holds Avro usage, saying why at every retry, while the registry URL misses its API root; none is dead-lettered', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    await kit.produce([{ key: 'acme', value: kit.avro({ id: 'evt-1', customerId: 'acme', event: 'api_call', timestamp: USAGE_TIME }) }]);
    // Apicurio's root answers 404 for every schema id, without Confluent's error code 40403.
    const { logger, lines } = capturedLog('warn');
    const misconfigured = await kit.startConsumer({ registryUrl: new URL(stackConfig.schemaRegistryUrl).origin, logger, maxBackoffMs: 200 });
    await waitFor(() => lines.filter((line) => line.includes('without Confluent')).length >= 3, { description: 'retries that say why', timeoutMs: 60_000 });
    expect(misconfigured.counters()).toMatchObject({ consumed: 0, deadLettered: 0 });
    await misconfigured.stop();

    const fixed = await kit.startConsumer();
    await consumedAtLeast(fixed, 1);
    expect(fixed.counters()).toMatchObject({ matched: 1, deadLettered: 0 });
    expect(await kit.balanceOf(acme)).toBe('99');
  });

  it('dead-letters a binary CloudEvent with a repeated ce_ header as ambiguous', async () => {
    kit = await createMeteringTestKit();
    const headers = { ce_specversion: '1.0', ce_id: ['c-1', 'c-2'], ce_source: '/svc', ce_type: 'api_call', ce_subject: 'acme', ce_time: '2026-03-01T12:00:00Z' };
    await kit.produce([{ key: 'acme', value: Buffer.from('{}'), headers }]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 1);

    expect(consumer.counters()).toMatchObject({ matched: 0, deadLettered: 1 });
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(letter!.headers![DEAD_LETTER_HEADERS.errorCode]!.toString()).toBe('invalid_usage_event');
    expect(letter!.headers![DEAD_LETTER_HEADERS.reason]!.toString()).toMatch(/header ce_id is repeated/);
  });

  it('dead-letters a message with a header without a value, keeping it without a value, its headers cut or not', async () => {
    kit = await createMeteringTestKit();
    // Length -1 on the wire, as a Java producer sends a null header value; kafkajs reads it as null
    // (its types leave that out).
    const withNull = (headers: Record<string, unknown>) => headers as Record<string, Buffer>;
    await kit.produce([
      { key: 'acme', value: Buffer.from('not usage'), headers: withNull({ absent: null }) },
      { key: 'acme', value: Buffer.from('not usage'), headers: withNull({ absent: null, bulk: Buffer.alloc(70 * 1024, 'b') }) },
    ]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 2);

    expect(consumer.counters()).toMatchObject({ deadLettered: 2 });
    const [whole, cut] = await kit.readTopic(kit.dlqTopic, 2);
    expect(whole!.headers).toHaveProperty('absent', null);
    expect(cut!.headers![DEAD_LETTER_HEADERS.headersDropped]!.toString()).toBe('1');
    expect(cut!.headers).toHaveProperty('absent', null);
  });

  it('dead-letters a timestamp without a zone or not on the calendar, instead of guessing the instant', async () => {
    kit = await createMeteringTestKit();
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const acme = await kit.openBalance('acme', 'api', '100');
    const at = (id: string, timestamp: string) => ({ key: 'acme', value: Buffer.from(JSON.stringify({ id, customerId: 'acme', event: 'api_call', timestamp })) });
    await kit.produce([at('local', '2026-03-01T12:00:00'), at('feb-30', '2026-02-30T00:00:00Z'), at('zoned', '2026-03-01T13:00:00+01:00')]);
    const consumer = await kit.startConsumer();
    await consumedAtLeast(consumer, 3);

    expect(consumer.counters()).toMatchObject({ matched: 1, deadLettered: 2 });
    expect(await kit.balanceOf(acme)).toBe('99');
    const letters = await kit.readTopic(kit.dlqTopic, 2);
    expect(letters.map((letter) => letter.headers![DEAD_LETTER_HEADERS.errorCode]!.toString())).toEqual(['invalid_usage_event', 'invalid_usage_event']);
    expect(letters.map((letter) => letter.headers![DEAD_LETTER_HEADERS.reason]!.toString())).toEqual([
      expect.stringMatching(/timestamp must be ISO-8601 with a zone/),
      expect.stringMatching(/timestamp "2026-02-30T00:00:00Z" is not a date and time on the calendar/),
    ]);
  });
});
