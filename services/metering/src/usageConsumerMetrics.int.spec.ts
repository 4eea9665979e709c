import { uniqueName, waitFor } from '@tally/test-support';
import { readConsumerGroupLag, type PartitionGroupLag } from './consumerGroupLag';
import { consumedAtLeast, createMeteringTestKit, usageRecord, type MeteringTestKit } from './meteringTestKit.spec';
import type { UsageConsumerMetrics } from './usageConsumerOptions';

jest.setTimeout(120_000);

/** Metrics that keep what the consumer reported, newest last. */
function recordingMetrics() {
  const assignments: (readonly number[])[] = [];
  const groupLags: (readonly PartitionGroupLag[])[] = [];
  const topics = new Set<string>();
  const metrics: UsageConsumerMetrics = {
    batchProcessed: () => undefined,
    partitionsAssigned({ topic, partitions }) {
      topics.add(topic);
      assignments.push(partitions);
    },
    groupLagRead({ topic, partitions }) {
      topics.add(topic);
      groupLags.push(partitions);
    },
  };
  return { metrics, assignments, groupLags, topics };
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
});
