import { createTestTopic, deleteTopics, uniqueName, waitFor } from '@tally/test-support';
import { ConfigResourceTypes } from 'kafkajs';
import { readConsumerGroupLag, type PartitionGroupLag } from './consumerGroupLag';
import { consumedAtLeast, createMeteringTestKit, usageRecord, type MeteringTestKit } from './meteringTestKit.spec';
import type { PartitionHoldReason, UsageBatchMetrics, UsageConsumerMetrics } from './usageConsumerOptions';

jest.setTimeout(120_000);

/** Metrics that keep what the consumer reported, newest last. */
function recordingMetrics() {
  const assignments: (readonly number[])[] = [];
  const groupLags: (readonly PartitionGroupLag[])[] = [];
  const topics = new Set<string>();
  /** Holds and resumes in the order reported. */
  const holds: { readonly partition: number; readonly reason: PartitionHoldReason | 'resumed' }[] = [];
  const batches: UsageBatchMetrics[] = [];
  const metrics: UsageConsumerMetrics = {
    batchProcessed: (batch) => void batches.push(batch),
    partitionsAssigned({ topic, partitions }) {
      topics.add(topic);
      assignments.push(partitions);
    },
    groupLagRead({ topic, partitions }) {
      topics.add(topic);
      groupLags.push(partitions);
    },
    partitionHeld({ topic, partition, reason }) {
      topics.add(topic);
      holds.push({ partition, reason });
    },
    partitionResumed({ topic, partition }) {
      topics.add(topic);
      holds.push({ partition, reason: 'resumed' });
    },
  };
  /** Partitions held now, by the reports: each hold not yet followed by its partition's resume. */
  const held = () => holds.reduce((now, { reason }) => (reason === 'resumed' ? now - 1 : now + 1), 0);
  return { metrics, assignments, groupLags, topics, holds, held, batches };
}

/**
 * What the consumer tells its metrics: the partitions it holds at every join, so figures kept for
 * a partition that moved to another member can be dropped, and the group's lag as the broker
 * holds it, which grows even while no member consumes.
 */
describe('the usage consumer’s metrics', () => {
  let kit: MeteringTestKit | undefined;

  afterEach(async () => {
    await kit?.close();
    kit = undefined;
  });

  it('reports every partition to a lone member, then each member its share once a second joins', async () => {
    kit = await createMeteringTestKit({ partitions: 4 });
    const first = recordingMetrics();
    await kit.startConsumer({ metrics: first.metrics });
    await waitFor(() => first.assignments.at(-1)?.length === 4, { description: 'the first member to hold all 4 partitions', timeoutMs: 60_000 });
    expect(first.assignments.at(-1)).toEqual([0, 1, 2, 3]);

    const second = recordingMetrics();
    await kit.startConsumer({ metrics: second.metrics });
    const [mine, theirs] = await waitFor(
      () => {
        const a = first.assignments.at(-1);
        const b = second.assignments.at(-1);
        return a !== undefined && b !== undefined && a.length > 0 && b.length > 0 && a.length + b.length === 4 ? [a, b] : undefined;
      },
      { description: 'both members to hold a share of the 4 partitions', timeoutMs: 90_000 },
    );
    expect([...mine, ...theirs].sort()).toEqual([0, 1, 2, 3]);
    expect(first.assignments.length).toBeGreaterThanOrEqual(2);
    expect([...first.topics, ...second.topics]).toEqual([kit.topic, kit.topic]);
  });

  it('reads a group’s lag from the broker, with no member running: what is past its committed offset', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    const messages = (partition: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ key: 'c', value: kit!.json(usageRecord(`lag-${partition}-${i}`, 'c')), partition }));
    await kit.produce([...messages(0, 5), ...messages(1, 3)]);
    const groupId = uniqueName('lag_reader');

    // Never committed: from the log's start, everything waits; from its end, nothing does.
    expect(await readConsumerGroupLag(kit.admin, { groupId, topic: kit.topic, fromBeginning: true })).toEqual([
      { partition: 0, lag: 5 },
      { partition: 1, lag: 3 },
    ]);
    expect(await readConsumerGroupLag(kit.admin, { groupId, topic: kit.topic, fromBeginning: false })).toEqual([
      { partition: 0, lag: 0 },
      { partition: 1, lag: 0 },
    ]);

    await kit.admin.setOffsets({ groupId, topic: kit.topic, partitions: [{ partition: 0, offset: '2' }] });
    await kit.produce(messages(1, 4).map((message, i) => ({ ...message, value: kit!.json(usageRecord(`lag-more-${i}`, 'c')) })));
    expect(await readConsumerGroupLag(kit.admin, { groupId, topic: kit.topic, fromBeginning: true })).toEqual([
      { partition: 0, lag: 3 },
      { partition: 1, lag: 7 },
    ]);
  });

  it('reports the group’s lag on every partition while it runs, down to 0 once everything is committed', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.produce(Array.from({ length: 6 }, (_, i) => ({ key: `c${i}`, value: kit!.json(usageRecord(`run-${i}`, `c${i}`)), partition: i % 2 })));
    const recorded = recordingMetrics();
    const consumer = await kit.startConsumer({ metrics: recorded.metrics, groupLagIntervalMs: 100 });
    await consumedAtLeast(consumer, 6);
    await waitFor(() => recorded.groupLags.at(-1)?.every(({ lag }) => lag === 0), { description: 'a reading of lag 0 everywhere', timeoutMs: 30_000 });
    expect(recorded.groupLags.at(-1)?.map(({ partition }) => partition)).toEqual([0, 1]);
    expect([...recorded.topics]).toEqual([kit.topic]);
  });

  it('reports with each batch the Kafka timestamp of its last metered message, which the lag in seconds is measured from', async () => {
    kit = await createMeteringTestKit({ partitions: 1 });
    // Timestamps set by the producer, an hour apart from each other and from now.
    const hour = 3_600_000;
    const base = Date.now() - 3 * hour;
    await kit.produce(Array.from({ length: 3 }, (_, i) => ({ key: 'c', value: kit!.json(usageRecord(`ts-${i}`, 'c')), partition: 0, timestamp: String(base + i * hour) })));
    const recorded = recordingMetrics();
    const consumer = await kit.startConsumer({ metrics: recorded.metrics });
    await consumedAtLeast(consumer, 3);
    const last = recorded.batches.at(-1);
    expect(last).toMatchObject({ topic: kit.topic, partition: 0, lag: 0, lastTimestampMs: base + 2 * hour });
    expect(recorded.batches.reduce((sum, { messages }) => sum + messages, 0)).toBe(3);
  });

  it('reports each hold of a partition at usage waiting for a balance’s opening, and each resume, none held once it is metered', async () => {
    kit = await createMeteringTestKit({ partitions: 2 });
    await kit.createProduct({ id: 'api', name: 'API', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: null });
    await kit.registryStore.registerBalance({ id: 'dave-api', customerId: 'dave', productId: 'api' });
    const recorded = recordingMetrics();
    await kit.startConsumer({ metrics: recorded.metrics, balanceOpenWaitMs: 60_000, maxBackoffMs: 200 });
    await kit.produce([{ key: 'dave', partition: 1, value: kit.json(usageRecord('d1', 'dave')) }]);
    // Held, resumed after the backoff, found still waiting and held again.
    await waitFor(() => recorded.holds.filter(({ reason }) => reason === 'balance_not_opened').length >= 2, { description: 'partition 1 held twice', timeoutMs: 60_000 });
    expect(recorded.holds.slice(0, 3)).toEqual([
      { partition: 1, reason: 'balance_not_opened' },
      { partition: 1, reason: 'resumed' },
      { partition: 1, reason: 'balance_not_opened' },
    ]);

    const dave = await kit.openBalance('dave', 'api', '10');
    await waitFor(async () => (await kit!.balanceOf(dave)) === '9', { description: 'd1 metered once the balance opened', timeoutMs: 60_000 });
    expect(recorded.held()).toBe(0);
    expect(new Set(recorded.holds.map(({ partition }) => partition))).toEqual(new Set([1]));
    expect([...recorded.topics]).toEqual([kit.topic]);
  });

  it('reports a hold at a dead letter the topic refused, and the partition no longer held once the consumer stops', async () => {
    kit = await createMeteringTestKit();
    const smallDlq = await createTestTopic(kit.admin, { prefix: 'usage_dlq_small' });
    try {
      // Far below the 10 KB letter below.
      await kit.admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: smallDlq, configEntries: [{ name: 'max.message.bytes', value: '4096' }] }],
      });
      const recorded = recordingMetrics();
      const consumer = await kit.startConsumer({ dlqTopic: smallDlq, metrics: recorded.metrics, maxBackoffMs: 60_000 });
      await kit.produce([{ key: 'x', value: Buffer.alloc(10_000, 0x78) }]);
      // Each try held again, for longer each time (some 2 to 4 s by the third): held at the stop.
      await waitFor(() => recorded.holds.filter(({ reason }) => reason === 'dead_letter_refused').length >= 3 && recorded.held() === 1, {
        description: 'partition 0 held a third time at the refused letter',
        timeoutMs: 60_000,
      });
      expect(new Set(recorded.holds.map(({ partition, reason }) => `${partition} ${reason}`))).toEqual(new Set(['0 dead_letter_refused', '0 resumed']));
      // As docs/metrics.md says: while the consumer runs and owns the partition, each refusal is one hold.
      expect(consumer.counters().deadLetterRefusals).toBe(recorded.holds.filter(({ reason }) => reason === 'dead_letter_refused').length);
      await consumer.stop();
      expect(recorded.holds.at(-1)).toEqual({ partition: 0, reason: 'resumed' });
      expect(recorded.held()).toBe(0);
    } finally {
      await deleteTopics(kit.admin, [smallDlq]).catch(() => undefined);
    }
  });
});
