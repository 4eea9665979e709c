import { dumpPartitionLog, produceWithConsoleProducer, waitFor } from '@tally/test-support';
import { CompressionTypes } from 'kafkajs';
import { createMeteringTestKit, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';

jest.setTimeout(180_000);

const T0 = Date.UTC(2026, 2, 1, 12);
const CODECS = [
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD],
] as const;
const CUSTOMERS = ['alice', 'bob', 'carol'] as const;
const PER_RUN = 60;

describe('usage batches compressed with every codec Kafka producers use', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it("meters gzip, snappy, lz4 and zstd batches from Kafka's console producer and from kafkajs to the exact balance", async () => {
    kit = await createMeteringTestKit({ partitions: 3 });
    await kit.createProduct({
      id: 'api-credits',
      name: 'API credits',
      consumption: [{ event: 'api_call', credits: '0.25' }],
      lowBalanceThreshold: null,
    });
    const balances = new Map<string, string>();
    for (const customer of CUSTOMERS) balances.set(customer, await kit.openBalance(customer, 'api-credits', '1000'));

    const expectedCalls = new Map<string, number>(CUSTOMERS.map((customer) => [customer, 0]));
    const run = (codec: string, producer: string): UsageRecord[] =>
      Array.from({ length: PER_RUN }, (_, index) => {
        const customerId = CUSTOMERS[index % CUSTOMERS.length]!;
        expectedCalls.set(customerId, expectedCalls.get(customerId)! + 1);
        return { id: `${producer}-${codec}-${index}`, customerId, event: 'api_call', timestamp: T0 + index, properties: { codec } };
      });

    for (const [codec, type] of CODECS) {
      // The Java client, as a JVM backend would publish (snappy in snappy-java's framing).
      await produceWithConsoleProducer({
        topic: kit.topic,
        codec,
        records: run(codec, 'java').map((record) => ({ key: record.customerId, value: JSON.stringify(record) })),
      });
      // kafkajs with the codecs of @tally/kafka; the broker validates every compressed batch it
      // takes, so its accepting them shows the Java side reads what Tally writes.
      const producer = kit.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({
        topic: kit.topic,
        acks: -1,
        compression: type,
        messages: run(codec, 'kafkajs').map((record) => ({ key: record.customerId, value: kit.json(record) })),
      });
      await producer.disconnect();
    }

    // Every codec really is on the topic, as batches of several records.
    const logs = (await Promise.all([0, 1, 2].map((partition) => dumpPartitionLog(kit.admin, kit.topic, partition)))).join('\n');
    for (const [codec] of CODECS) expect(logs).toMatch(new RegExp(`count: ([2-9]|\\d{2,}) .*compresscodec: ${codec}`, 'i'));

    const total = CODECS.length * PER_RUN * 2;
    const consumer = await kit.startConsumer();
    await waitFor(() => consumer.counters().consumed >= total, { description: `${total} usage events consumed`, timeoutMs: 90_000 });

    expect(consumer.counters()).toMatchObject({ consumed: total, matched: total, deadLettered: 0 });
    for (const customer of CUSTOMERS) {
      // 1000 − 0.25 per call
      const calls = expectedCalls.get(customer)!;
      expect(await kit.balanceOf(balances.get(customer)!)).toBe((1000 - calls / 4).toString());
    }
  });

  it('writes its dead letters with the codec it is given', async () => {
    kit = await createMeteringTestKit();
    const consumer = await kit.startConsumer({ compression: CompressionTypes.ZSTD });
    await kit.produce([{ key: 'dave', value: Buffer.from('not usage at all') }]);
    await waitFor(() => consumer.counters().deadLettered === 1, { description: 'the bad message dead-lettered', timeoutMs: 60_000 });
    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    expect(letter!.value!.toString()).toBe('not usage at all');
    // The batch's codec, as the broker stored it.
    expect(await dumpPartitionLog(kit.admin, kit.dlqTopic, 0)).toMatch(/compresscodec: ZSTD/i);
  });
});
