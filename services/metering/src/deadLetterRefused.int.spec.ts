import { capturedLog, createTestTopic, deleteTopics, waitFor } from '@tally/test-support';
import { ConfigResourceTypes } from 'kafkajs';
import { DEAD_LETTER_HEADERS } from './deadLetterMessage';
import { createMeteringTestKit, usageRecord as usage, type MeteringTestKit } from './meteringTestKit.spec';

jest.setTimeout(180_000);

/**
 * A dead letter is never lost, and a dead-letter topic that refuses one (a max.message.bytes set
 * below the letters Tally writes, an ACL) holds only that partition, loudly; a consumer that
 * kafkajs gives up on fails its worker instead of idling in a process that looks well.
 */
describe('a dead-letter topic that refuses a letter', () => {
  let kit: MeteringTestKit;
  let smallDlq: string | undefined;

  afterEach(async () => {
    if (smallDlq !== undefined) await deleteTopics(kit.admin, [smallDlq]).catch(() => undefined);
    smallDlq = undefined;
    await kit?.close();
  });

  const maxMessageBytes = (topic: string, bytes: number) =>
    kit.admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(bytes) }] }],
    });

  it('holds that partition at the letter, says so, meters the other partitions, and sends the letter once the topic takes it', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    const alice = await kit.openBalance('alice', 'api', '100');
    const bob = await kit.openBalance('bob', 'api', '100');
    // A dead-letter topic someone set far below what a letter may need (Tally cuts letters to fit 1 MiB).
    smallDlq = await createTestTopic(kit.admin, { prefix: 'usage_dlq_small' });
    await maxMessageBytes(smallDlq, 4096);
    const { logger, lines } = capturedLog('warn');
    const consumer = await kit.startConsumer({ dlqTopic: smallDlq, logger, maxBackoffMs: 200 });

    // 10 KB of junk on partition 0: its dead letter does not fit.
    await kit.produce([{ partition: 0, key: 'alice', value: Buffer.alloc(10_000, 0x78) }]);
    await waitFor(() => consumer.counters().deadLetterRefusals >= 2, { description: 'the refused letter tried again', timeoutMs: 60_000 });
    // Usage on partition 1 is metered; partition 0 is committed up to the letter and no further
    // (usage behind the letter in its chunk may be charged, once: its appends come before the
    // chunk's letters, and a redelivery finds it metered).
    await kit.produce([
      { partition: 0, key: 'alice', value: kit.json(usage('a1', 'alice')) },
      { partition: 1, key: 'bob', value: kit.json(usage('b1', 'bob')) },
    ]);
    await waitFor(async () => (await kit.balanceOf(bob)) === '99', { description: "bob's usage on partition 1 metered", timeoutMs: 60_000 });
    const refusedSoFar = consumer.counters().deadLetterRefusals;
    await waitFor(() => consumer.counters().deadLetterRefusals > refusedSoFar, { description: 'the letter refused once more after', timeoutMs: 60_000 });
    const committedAt0 = async () => (await kit.admin.fetchOffsets({ groupId: kit.groupId, topics: [kit.topic] }))[0]!.partitions.find(({ partition }) => partition === 0)!.offset;
    expect(await committedAt0()).toMatch(/^(-1|0)$/);
    expect(consumer.state()).toBe('running');
    // Said loudly, with the place and the broker's reason, each time.
    const refusals = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'the dead-letter topic refused a dead letter; this partition waits at its message and tries again');
    expect(refusals.length).toBeGreaterThanOrEqual(2);
    expect(refusals[0]).toMatchObject({ level: 50, partition: 0, offset: '0', dlqTopic: smallDlq, errorCode: 'undecodable_usage_event' });
    expect(JSON.stringify(refusals[0]!.err)).toMatch(/larger than the max message size/);

    // The operator raises the topic's limit: the letter goes, once, and the partition moves on.
    await maxMessageBytes(smallDlq, 1024 * 1024);
    await waitFor(async () => (await committedAt0()) === '2', { description: 'partition 0 committed past the letter and the usage behind it', timeoutMs: 60_000 });
    expect(await kit.balanceOf(alice)).toBe('99');
    const letters = await kit.readTopic(smallDlq, 1);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.headers![DEAD_LETTER_HEADERS.errorCode]!.toString()).toBe('undecodable_usage_event');
    expect(letters[0]!.value!.length).toBe(10_000);
  });

  it('fails the consumer worker when kafkajs gives up on it, so that its process does not idle as if well', async () => {
    kit = await createMeteringTestKit();
    let thrown: Error | undefined;
    const consumer = await kit.startConsumer({
      // A bug in the consumer that escapes the batch, saying (as Tally's errors do) that retrying
      // cannot fix it: kafkajs stops consuming and does not restart.
      metrics: {
        batchProcessed: () => {
          throw (thrown = Object.assign(new Error('a bug after the chunk'), { retriable: false }));
        },
        partitionsAssigned: () => undefined,
        groupLagRead: () => undefined,
      },
    });
    const failures: unknown[] = [];
    consumer.onFailure((error) => failures.push(error));
    await kit.produce([{ key: 'x', value: kit.json(usage('x1', 'x')) }]);
    await waitFor(() => consumer.state() === 'failed', { description: 'the consumer worker failed', timeoutMs: 60_000 });
    expect(failures).toHaveLength(1);
    expect(JSON.stringify(failures[0], Object.getOwnPropertyNames(failures[0]))).toContain(thrown!.message);
  });
});
