import { corruptGzipBatch, stackConfig, uniqueName, waitFor } from '@tally/test-support';
import { CompressionTypes } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createMeteringTestKit, usageRecord as usage, type MeteringTestKit, type UsageRecord } from './meteringTestKit.spec';
import { createDeadLetterReader } from './deadLetterReader';
import { SkipBatchRefusedError, skipUndecodableBatch } from './skipUndecodableBatch';
import { createUsageEventDecoder } from './usageEventDecoder';

jest.setTimeout(180_000);

describe('a record batch the consumer cannot decode', () => {
  let kit: MeteringTestKit;

  afterEach(async () => {
    await kit?.close();
  });

  it('stops only its partition, visibly, until skip-batch dead-letters it and moves the group past it', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const alice = await kit.openBalance('alice', 'api', '100');
    const bob = await kit.openBalance('bob', 'api', '100');
    const producer = kit.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = (partition: number, records: UsageRecord[]) =>
      producer.send({
        topic: kit.topic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: records.map((record) => ({ partition, key: record.customerId, value: kit.json(record) })),
      });
    // Partition 0: 2 good, 3 in the batch to be broken (offsets 2..4), 4 good. Partition 1: 5 good.
    await send(0, [usage('a1', 'alice'), usage('a2', 'alice')]);
    await send(0, [usage('a3', 'alice'), usage('a4', 'alice'), usage('a5', 'alice')]);
    await send(0, [usage('a6', 'alice'), usage('a7', 'alice'), usage('a8', 'alice'), usage('a9', 'alice')]);
    await send(1, [usage('b1', 'bob'), usage('b2', 'bob'), usage('b3', 'bob'), usage('b4', 'bob'), usage('b5', 'bob')]);
    await producer.disconnect();
    await corruptGzipBatch(kit.admin, kit.topic, 0, 2n);

    const consumer = await kit.startConsumer();
    await waitFor(() => consumer.stalledPartitions().length === 1, { description: 'partition 0 reported stalled', timeoutMs: 60_000 });
    const [stall] = consumer.stalledPartitions();
    expect(stall).toMatchObject({ topic: kit.topic, partition: 0, offset: '2', lastOffset: '4', records: 3, codec: 'gzip' });
    expect(stall!.reason).toMatch(/gzip batch could not be decompressed/);
    // The other partition, and what precedes the batch, are metered.
    await waitFor(async () => (await kit.balanceOf(bob)) === '95', { description: "bob's 5 calls metered", timeoutMs: 60_000 });
    expect(await kit.balanceOf(alice)).toBe('98');
    // Committed off the fetch cycle (offsetCommitter.ts): up to the stalled batch, and no further.
    const committedAt0 = async () => (await kit.admin.fetchOffsets({ groupId: kit.groupId, topics: [kit.topic] }))[0]!.partitions.find((entry) => entry.partition === 0)!.offset;
    await waitFor(async () => (await committedAt0()) === '2', { description: "partition 0's offset committed up to the stalled batch", timeoutMs: 10_000 });

    const skip = {
      kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('skip') },
      groupId: kit.groupId,
      topic: kit.topic,
      dlqTopic: kit.dlqTopic,
      partition: 0,
      offset: '2',
    };
    // Never behind a running consumer's back.
    await expect(skipUndecodableBatch(skip)).rejects.toThrow(SkipBatchRefusedError);
    await consumer.stop();

    await expect(skipUndecodableBatch({ ...skip, offset: '6' })).rejects.toThrow(/decodes: restart the consumers/);
    // A group that has committed nothing starts at offset 0, before the batch: skipping would lose 0..1.
    await expect(skipUndecodableBatch({ ...skip, groupId: uniqueName('fresh') })).rejects.toThrow(/is at offset 0 .* outside the undecodable batch 2\.\.4/);
    const skipped = await skipUndecodableBatch(skip);
    expect(skipped).toMatchObject({ firstOffset: '2', lastOffset: '4', records: 3, codec: 'gzip', committed: '5' });

    const [letter] = await kit.readTopic(kit.dlqTopic, 1);
    const header = (name: string) => letter!.headers![name]!.toString();
    expect(header(DEAD_LETTER_HEADERS.errorCode)).toBe('undecodable_batch');
    expect(header(DEAD_LETTER_HEADERS.sourcePartition)).toBe('0');
    expect(header(DEAD_LETTER_HEADERS.sourceOffset)).toBe('2');
    expect(header(DEAD_LETTER_HEADERS.sourceLastOffset)).toBe('4');
    // The raw batch as stored: its base offset first, the broken payload after the 61-byte header.
    expect(letter!.value!.readBigInt64BE(0)).toBe(2n);
    // Read whole, it is said to be the batch, not taken for Avro (its first byte is 0, as Avro's framing's).
    const whole = await createDeadLetterReader({ kafka: skip.kafka, dlqTopic: kit.dlqTopic, decoder: createUsageEventDecoder({ registryUrl: stackConfig.schemaRegistryUrl }) }).read(0, letter!.offset);
    expect(whole.value).toMatchObject({ base64: letter!.value!.toString('base64'), format: null, record: null, unreadable: expect.stringContaining('a raw record batch that tally skip-batch set aside') });
    expect(letter!.value!.subarray(61, 63).toString()).toBe('XX');

    const resumed = await kit.startConsumer();
    await waitFor(async () => (await kit.balanceOf(alice)) === '94', { description: "alice's calls after the batch metered", timeoutMs: 60_000 });
    expect(resumed.stalledPartitions()).toEqual([]);
    expect(await kit.balanceOf(bob)).toBe('95');
  });
  it('reports the stall again on a member that got the partition back from another', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    const producer = kit.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = (records: UsageRecord[]) =>
      producer.send({ topic: kit.topic, acks: -1, compression: CompressionTypes.GZIP, messages: records.map((record) => ({ key: record.customerId, value: kit.json(record) })) });
    await send([usage('a1', 'alice'), usage('a2', 'alice')]);
    await send([usage('a3', 'alice'), usage('a4', 'alice'), usage('a5', 'alice')]);
    await producer.disconnect();
    await corruptGzipBatch(kit.admin, kit.topic, 0, 2n);
    // kafkajs's round robin gives the one partition to the member whose id sorts first (ids begin
    // with the client id): `second` takes it from `first` as it joins, and gives it back as it leaves.
    const member = (name: string) => ({ kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName(name) } });

    const first = await kit.startConsumer(member('zz-first'));
    await waitFor(() => first.stalledPartitions().length === 1, { description: 'partition 0 stalled on the first member', timeoutMs: 60_000 });
    const second = await kit.startConsumer(member('aa-second'));
    await waitFor(() => second.stalledPartitions().length === 1, { description: 'partition 0 stalled on the second member', timeoutMs: 60_000 });
    expect(first.stalledPartitions()).toEqual([]);
    await second.stop();

    // Back on the first member: stopped there again, and said so (kafkajs kept its pause across
    // the rebalances; a pause without a report would be a silent stall).
    await waitFor(() => first.stalledPartitions().length === 1, { description: 'partition 0 reported stalled again on the first member', timeoutMs: 30_000 });
    expect(first.stalledPartitions()[0]).toMatchObject({ partition: 0, offset: '2', lastOffset: '4' });
  });
});
