import type { MetricsRegistry } from '@tally/metrics';
import type { PartitionHoldReason, UsageConsumerMetrics } from '@tally/metering';

/** Every reason, so each series exists from the start (a record: the compiler names a new one missing). */
const HOLD_REASONS = Object.keys({ balance_not_opened: true, dead_letter_refused: true } satisfies Record<PartitionHoldReason, true>) as PartitionHoldReason[];

/**
 * The metering consumer's batch timings and its two lags per partition (docs/metrics.md). The
 * group's lag is the broker's, the same from every member. The batch lag is what this process saw
 * at a partition's last batch; when the group hands a partition to another member, its series is
 * removed rather than left at that figure, which a sum over the group's processes would count
 * twice and never see fall. Holds (a partition paused at usage waiting for a balance's opening, or
 * at a dead letter the topic refused) are counted by reason, each try, beside the partitions held
 * now, which likewise leave a revoked partition out.
 */
export function createUsageConsumerMetrics(metrics: MetricsRegistry, options: { readonly now?: () => number } = {}): UsageConsumerMetrics {
  const now = options.now ?? Date.now;
  const batchSeconds = metrics.histogram({
    name: 'tally_consumer_batch_seconds',
    help: 'Time to meter one batch of usage events, from its start to its offsets handed to the committer (the commit follows off the fetch cycle)',
  });
  const partitionLag = metrics.gauge({
    name: 'tally_consumer_lag_messages',
    help: 'Usage events behind the last committed batch, per partition',
    labelNames: ['topic', 'partition'] as const,
  });
  /**
   * Per `topic/partition` this process holds, since when its balances have missed usage (epoch
   * ms), or null when nothing waits. A batch that left events behind gives its last metered
   * event's Kafka timestamp: the balances reflect the partition's usage up to it, none after it
   * (Kafka's timestamps rise within a partition, save a producer's skewed clock). Past a batch
   * that reached the end (or before any batch), the broker's group-lag reading that first finds
   * events waiting gives its own time: they came after the last batch, and by then they wait, so
   * a partition nothing is metered from ages with the clock however its last batch ended (within
   * a reading's interval). Read at scrape time.
   */
  const behindSince = new Map<string, number | null>();
  /** The partitions this process holds, per topic, as the last join gave them. */
  const assigned = new Map<string, ReadonlySet<number>>();
  metrics.gauge({
    name: 'tally_consumer_lag_seconds',
    help: 'How far behind usage each partition this process holds is in time: the age of its last metered usage event while more wait behind it, or, past a batch that reached the end, the time since a group-lag reading first found events waiting; 0 when nothing waits',
    labelNames: ['topic', 'partition'] as const,
    collect(gauge) {
      gauge.reset();
      const at = now();
      for (const [key, since] of behindSince) {
        const slash = key.lastIndexOf('/');
        gauge.set({ topic: key.slice(0, slash), partition: key.slice(slash + 1) }, since === null ? 0 : Math.max(0, at - since) / 1000);
      }
    },
  });
  const groupLag = metrics.gauge({
    name: 'tally_consumer_group_lag_messages',
    help: 'Usage events the consumer group has not committed, per partition, as the broker holds them (read every 15 s; the same from every member)',
    labelNames: ['topic', 'partition'] as const,
  });
  const holds = metrics.counter({
    name: 'tally_consumer_partition_holds_total',
    help: "Partitions held out of the fetch for a backoff, each hold counted: at usage waiting for a balance's opening, or at a dead letter the dead-letter topic refused (the refusals of tally_consumer_dead_letter_refusals_total met while the consumer runs and owns the partition)",
    labelNames: ['reason'] as const,
  });
  const heldPartitions = metrics.gauge({
    name: 'tally_consumer_held_partitions',
    help: 'Partitions this process holds out of the fetch now, waiting for a balance to be opened or for the dead-letter topic to take a letter',
  });
  // At 0 from the start: rate() sees no increase in a series whose first sample is already 1.
  for (const reason of HOLD_REASONS) holds.inc({ reason }, 0);
  heldPartitions.set(0);
  /** Holds not yet resumed, per `topic/partition`: a partition counts as held while it has one. */
  const unresumed = new Map<string, number>();
  /**
   * Holds of partitions revoked while held, per `topic/partition`: no longer counted (the
   * partition is another member's), their resumes still to come. A resume ends one of these
   * first, so it does not end a hold made after the partition came back.
   */
  const revoked = new Map<string, number>();
  /** The partitions this process has a lag series for, per topic. */
  const reported = new Map<string, Set<number>>();

  return {
    batchProcessed(batch) {
      batchSeconds.observe(batch.durationMs / 1000);
      partitionLag.set({ topic: batch.topic, partition: String(batch.partition) }, batch.lag);
      behindSince.set(`${batch.topic}/${batch.partition}`, batch.lag > 0 ? batch.lastTimestampMs : null);
      const partitions = reported.get(batch.topic) ?? new Set<number>();
      reported.set(batch.topic, partitions.add(batch.partition));
    },
    partitionsAssigned({ topic, partitions }) {
      const held = new Set(partitions);
      assigned.set(topic, held);
      for (const key of behindSince.keys()) if (key.startsWith(`${topic}/`) && !held.has(Number(key.slice(topic.length + 1)))) behindSince.delete(key);
      const known = reported.get(topic);
      for (const partition of known ?? []) {
        if (held.has(partition)) continue;
        partitionLag.remove({ topic, partition: String(partition) });
        known?.delete(partition);
      }
      // Held until their timers fire, else: a group-wide sum would count a partition twice.
      for (const [key, count] of unresumed) {
        if (!key.startsWith(`${topic}/`) || held.has(Number(key.slice(topic.length + 1)))) continue;
        revoked.set(key, (revoked.get(key) ?? 0) + count);
        unresumed.delete(key);
      }
      heldPartitions.set(unresumed.size);
    },
    groupLagRead({ topic, partitions }) {
      const held = assigned.get(topic);
      for (const { partition, lag } of partitions) {
        groupLag.set({ topic, partition: String(partition) }, lag);
        if (held?.has(partition) !== true) continue;
        const key = `${topic}/${partition}`;
        // Nothing past the group's commit: caught up. Events waiting where no batch left any: since now.
        if (lag === 0) behindSince.set(key, null);
        else if ((behindSince.get(key) ?? null) === null) behindSince.set(key, now());
      }
    },
    partitionHeld({ topic, partition, reason }) {
      holds.inc({ reason });
      const key = `${topic}/${partition}`;
      unresumed.set(key, (unresumed.get(key) ?? 0) + 1);
      heldPartitions.set(unresumed.size);
    },
    partitionResumed({ topic, partition }) {
      const key = `${topic}/${partition}`;
      const stale = revoked.get(key) ?? 0;
      if (stale > 0) {
        if (stale > 1) revoked.set(key, stale - 1);
        else revoked.delete(key);
        return;
      }
      const left = (unresumed.get(key) ?? 0) - 1;
      if (left > 0) unresumed.set(key, left);
      else unresumed.delete(key);
      heldPartitions.set(unresumed.size);
    },
  };
}
