import { createMetricsRegistry } from '@tally/metrics';
import { createUsageConsumerMetrics } from './usageConsumerMetrics';

/** A per-partition series of the usage topic as Prometheus would scrape it: `partition` → value. */
async function partitionSeries(render: () => Promise<string>, name: string): Promise<Record<string, number>> {
  const text = await render();
  return Object.fromEntries(
    [...text.matchAll(new RegExp(`^${name}\\{topic="usage",partition="(\\d+)"\\} ([\\d.]+)$`, 'gm'))].map(([, partition, value]) => [partition!, Number(value)]),
  );
}

/** The lag series in messages. */
const lagSeries = (render: () => Promise<string>) => partitionSeries(render, 'tally_consumer_lag_messages');

describe('the usage consumer’s metrics', () => {
  function batch(partition: number, lag: number) {
    return { topic: 'usage', partition, messages: 10, durationMs: 20, lag, lastTimestampMs: 0 };
  }

  it('reports each partition’s lag as of its last batch, and each batch’s duration', async () => {
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry);
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1] });
    metrics.batchProcessed(batch(0, 500));
    metrics.batchProcessed(batch(1, 40));
    metrics.batchProcessed(batch(0, 120));

    expect(await lagSeries(() => registry.render())).toEqual({ '0': 120, '1': 40 });
    expect(await registry.render()).toContain('tally_consumer_batch_seconds_count 3');
  });

  it('drops the lag of a partition the group gave to another member, and keeps the rest', async () => {
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry);
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1, 2] });
    metrics.batchProcessed(batch(0, 7));
    metrics.batchProcessed(batch(1, 900));
    metrics.batchProcessed(batch(2, 3));

    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 2] });
    expect(await lagSeries(() => registry.render())).toEqual({ '0': 7, '2': 3 });

    // None left (more members than partitions), then one back: it reports again from its next batch.
    metrics.partitionsAssigned({ topic: 'usage', partitions: [] });
    expect(await lagSeries(() => registry.render())).toEqual({});
    metrics.partitionsAssigned({ topic: 'usage', partitions: [1] });
    metrics.batchProcessed(batch(1, 15));
    expect(await lagSeries(() => registry.render())).toEqual({ '1': 15 });
  });

  it('reports how old the last metered usage event of each partition is while events wait behind it, read at scrape time', async () => {
    let now = 1_000_000;
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry, { now: () => now });
    const seconds = () => partitionSeries(() => registry.render(), 'tally_consumer_lag_seconds');
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1, 2] });
    metrics.batchProcessed({ ...batch(0, 500), lastTimestampMs: now - 4_000 });
    metrics.batchProcessed({ ...batch(1, 0), lastTimestampMs: now - 9_000 });
    expect(await seconds()).toEqual({ '0': 4, '1': 0 });

    // Nothing metered for a minute: the behind partition ages with the clock, the caught-up one stays at 0.
    now += 60_000;
    expect(await seconds()).toEqual({ '0': 64, '1': 0 });

    // A batch that reaches the end, and a revoked partition that loses its series.
    metrics.batchProcessed({ ...batch(0, 0), lastTimestampMs: now - 50 });
    metrics.batchProcessed({ ...batch(2, 3), lastTimestampMs: now - 2_500 });
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 2] });
    expect(await seconds()).toEqual({ '0': 0, '2': 2.5 });

    // A producer's timestamp from the future counts as no age, not a negative one.
    metrics.batchProcessed({ ...batch(2, 8), lastTimestampMs: now + 30_000 });
    expect(await seconds()).toEqual({ '0': 0, '2': 0 });
  });

  it('ages a partition nothing is metered from once the broker’s reading shows events waiting past its last batch, from that reading on', async () => {
    let now = 5_000_000;
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry, { now: () => now });
    const seconds = () => partitionSeries(() => registry.render(), 'tally_consumer_lag_seconds');
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1] });
    // Partition 0 caught up an hour ago; partition 1 never had a batch (held at its first message).
    metrics.batchProcessed({ ...batch(0, 0), lastTimestampMs: now - 3_600_000 });
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 0 }, { partition: 1, lag: 0 } ] });
    expect(await seconds()).toEqual({ '0': 0, '1': 0 });

    // Events arrive and nothing meters them: aged from the reading that first saw them waiting.
    now += 15_000;
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 3 }, { partition: 1, lag: 2 } ] });
    now += 15_000;
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 5 }, { partition: 1, lag: 2 } ] });
    now += 30_000;
    expect(await seconds()).toEqual({ '0': 45, '1': 45 });

    // A batch that reaches the end, and a reading of nothing waiting: 0 again.
    metrics.batchProcessed({ ...batch(0, 0), lastTimestampMs: now - 10 });
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 0 }, { partition: 1, lag: 0 } ] });
    expect(await seconds()).toEqual({ '0': 0, '1': 0 });

    // A partition of another member is not this process's to report.
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0] });
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 0 }, { partition: 1, lag: 9 } ] });
    expect(await seconds()).toEqual({ '0': 0 });
  });

  it('reports the group’s lag on each partition as the broker’s last reading gave it', async () => {
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry);
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 12 }, { partition: 1, lag: 0 } ] });
    metrics.groupLagRead({ topic: 'usage', partitions: [ { partition: 0, lag: 4 }, { partition: 1, lag: 30 } ] });
    const text = await registry.render();
    expect([...text.matchAll(/^tally_consumer_group_lag_messages\{topic="usage",partition="(\d+)"\} (\d+)$/gm)].map(([, p, v]) => [p, v])).toEqual([
      ['0', '4'],
      ['1', '30'],
    ]);
  });

  /** The holds counter's series and the held gauge, as Prometheus would scrape them. */
  async function holdFigures(registry: ReturnType<typeof createMetricsRegistry>) {
    const text = await registry.render();
    return {
      holds: Object.fromEntries([...text.matchAll(/^tally_consumer_partition_holds_total\{reason="(\w+)"\} (\d+)$/gm)].map(([, reason, value]) => [reason!, Number(value)])),
      held: Number(/^tally_consumer_held_partitions (\d+)$/m.exec(text)?.[1]),
    };
  }

  it('counts holds by reason, and the partitions held now until each is resumed', async () => {
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry);
    const figures = () => holdFigures(registry);
    // Both series from the start, at 0: rate() over a series that appears at 1 misses that first hold.
    expect(await figures()).toEqual({ holds: { balance_not_opened: 0, dead_letter_refused: 0 }, held: 0 });
    metrics.partitionHeld!({ topic: 'usage', partition: 0, reason: 'balance_not_opened' });
    metrics.partitionHeld!({ topic: 'usage', partition: 3, reason: 'dead_letter_refused' });
    expect(await figures()).toEqual({ holds: { balance_not_opened: 1, dead_letter_refused: 1 }, held: 2 });
    metrics.partitionResumed!({ topic: 'usage', partition: 0 });
    metrics.partitionHeld!({ topic: 'usage', partition: 0, reason: 'balance_not_opened' });
    metrics.partitionResumed!({ topic: 'usage', partition: 3 });
    expect(await figures()).toEqual({ holds: { balance_not_opened: 2, dead_letter_refused: 1 }, held: 1 });
    metrics.partitionResumed!({ topic: 'usage', partition: 0 });
    expect(await figures()).toEqual({ holds: { balance_not_opened: 2, dead_letter_refused: 1 }, held: 0 });
  });

  it('stops counting a partition as held once the group gives it to another member, and its late resume takes no later hold’s place', async () => {
    const registry = createMetricsRegistry();
    const metrics = createUsageConsumerMetrics(registry);
    const held = async () => (await holdFigures(registry)).held;
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1] });
    metrics.partitionHeld!({ topic: 'usage', partition: 0, reason: 'balance_not_opened' });
    metrics.partitionHeld!({ topic: 'usage', partition: 1, reason: 'dead_letter_refused' });
    expect(await held()).toBe(2);

    // Partition 0 is another member's now, which may hold it too: a sum over the group must not count it here.
    metrics.partitionsAssigned({ topic: 'usage', partitions: [1] });
    expect(await held()).toBe(1);

    // Back here and held again before the first hold's timer fires: that timer's resume ends the old hold, not this one.
    metrics.partitionsAssigned({ topic: 'usage', partitions: [0, 1] });
    metrics.partitionHeld!({ topic: 'usage', partition: 0, reason: 'balance_not_opened' });
    expect(await held()).toBe(2);
    metrics.partitionResumed!({ topic: 'usage', partition: 0 });
    expect(await held()).toBe(2);
    metrics.partitionResumed!({ topic: 'usage', partition: 0 });
    metrics.partitionResumed!({ topic: 'usage', partition: 1 });
    expect(await held()).toBe(0);
  });
});
