import { waitFor } from '@tally/test-support';
import { createMeteringTestKit, type MeteringTestKit } from './meteringTestKit.spec';
import type { UsageConsumerMetrics } from './usageConsumerOptions';

jest.setTimeout(120_000);

/**
 * The consumer tells its metrics which partitions it holds at every join, so figures kept for a
 * partition that moved to another member can be dropped (the lag gauge, services/tally).
 */
describe('the usage consumer’s partition assignments', () => {
  let kit: MeteringTestKit;

  beforeAll(async () => {
    kit = await createMeteringTestKit({ partitions: 4 });
  });

  afterAll(async () => {
    await kit?.close();
  });

  /** Metrics that keep the assignments the consumer reported, newest last. */
  function recordingMetrics(): UsageConsumerMetrics & { readonly assignments: (readonly number[])[]; readonly topics: Set<string> } {
    const assignments: (readonly number[])[] = [];
    const topics = new Set<string>();
    return {
      assignments,
      topics,
      batchProcessed: () => undefined,
      partitionsAssigned({ topic, partitions }) {
        topics.add(topic);
        assignments.push(partitions);
      },
    };
  }

  it('reports every partition to a lone member, then each member its share once a second joins', async () => {
    const first = recordingMetrics();
    await kit.startConsumer({ metrics: first });
    await waitFor(() => first.assignments.at(-1)?.length === 4, { description: 'the first member to hold all 4 partitions', timeoutMs: 60_000 });
    expect(first.assignments.at(-1)).toEqual([0, 1, 2, 3]);

    const second = recordingMetrics();
    await kit.startConsumer({ metrics: second });
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
});
