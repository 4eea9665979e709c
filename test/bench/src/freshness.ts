import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { createBalanceReadModel, type BalanceReadModel } from '@tally/projections';
import { waitFor, type TallyProcess } from '@tally/test-support';
import { Partitioners, type Message } from 'kafkajs';
import type { BenchRun } from './benchRun';
import { ensureProjected } from './ensureProjected';
import { waitForGroupAtEnd } from './waitForGroupAtEnd';
import { summariseLatencies, type LatencySummary } from './percentiles';
import { formatCount, progress } from './progress';
import { balanceIdOf } from './benchBalances';
import { activeGeneration, balanceSnapshotKey } from './snapshotKeys';
import { benchUsageRecord, createTopic, registerUsageSchema, usageMessage } from './usageTopic';

export interface FreshnessResult {
  readonly rate: number;
  readonly durationSeconds: number;
  readonly published: number;
  /**
   * Seconds for the fresh process to meter and project one event for every balance before the
   * measurement: its cache starts empty, and each first touch folds the balance's whole stream.
   */
  readonly warmUpSeconds: number;
  /** Publish → the balance's Redis snapshot reflecting the event, in ms, over the tracked balances. */
  readonly tally: LatencySummary;
  /** Tracked events whose snapshot did not show them within the grace period after publishing stopped. */
  readonly unobserved: number;
  /** The floor: publish → a plain kafkajs consumer receiving the same messages, in ms. */
  readonly kafkaDelivery: LatencySummary;
  readonly trackedBalances: number;
  readonly pollIntervalMs: number;
  /** Peak resident memory (VmHWM) of the consumer+projector process. */
  readonly peakRssBytes: number;
}

/**
 * Few enough that reading them every POLL_INTERVAL_MS (2,500 HGETs a second, one pipeline per
 * poll) takes little of a Redis that the projector writes to and redis-benchmark measures at
 * only some 15,000 commands a second on this busy machine.
 */
const TRACKED_BALANCES = 50;
/** One event in this many goes to a tracked balance. */
const TRACKED_SHARE = 10;
const POLL_INTERVAL_MS = 20;
const GRACE_MS = 60_000;

/** Waits until the process has committed the whole topic and projected everything it appended. */
async function waitUntilSettled(run: BenchRun, readModel: BalanceReadModel, topic: string, groupId: string, tally: TallyProcess): Promise<void> {
  let exitedWith: number | string | undefined;
  void tally.exited().then((code) => (exitedWith = code));
  await waitForGroupAtEnd({
    admin: run.admin,
    groupId,
    topic,
    timeoutMs: 10 * 60_000,
    failed: () => (exitedWith === undefined ? undefined : `exited with ${exitedWith}`),
  });
  const head = await run.eventStore.headPosition();
  await waitFor(async () => (await readModel.checkpoint()) >= head, { description: 'the projector to reach the head of the ledger', timeoutMs: 10 * 60_000, intervalMs: 100 });
}

interface Expectation {
  /** The snapshot reflects the event once its stream revision reaches this. */
  readonly revision: bigint;
  readonly publishedAt: number;
}

/**
 * Publishes usage events at a steady rate to a warmed-up Tally process running the consumer and
 * the projector, and measures how long each takes to show in Redis. Each usage event is exactly one
 * ledger event on its balance (see BENCH_PRODUCT), so the k-th event published for a tracked
 * balance is reflected once the snapshot's revision is k past where it started. The tracked
 * balances' snapshot hashes are read in one pipeline every POLL_INTERVAL_MS.
 */
export async function measureFreshness(run: BenchRun): Promise<FreshnessResult> {
  const { customers, rate, durationSeconds } = run.options;
  await ensureProjected(run);
  const topic = await run.createTopic('fresh', (name) => createTopic(run.admin, name));
  const dlq = await run.createTopic('fresh_dlq', (name) => createTopic(run.admin, name, 1));
  const schemaId = await registerUsageSchema(run.registry, topic);
  const readModel = createBalanceReadModel({ redis: run.redis, keyPrefix: run.keyPrefix });
  const groupId = run.group('fresh');
  const tally = await run.startTally('consumer,projector', { TALLY_USAGE_TOPIC: topic, TALLY_DLQ_TOPIC: dlq, TALLY_CONSUMER_GROUP: groupId });
  const producer = run.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const settle = () => waitUntilSettled(run, readModel, topic, groupId, tally);

  // Steady state is what is measured: first every balance once, which loads it into the consumer.
  progress(`freshness: warming up the consumer+projector process with one event for each of ${formatCount(customers)} balances`);
  const warmUpStarted = performance.now();
  for (let from = 0; from < customers; from += 5000) {
    const messages: Message[] = [];
    for (let customer = from; customer < Math.min(customers, from + 5000); customer += 1) {
      messages.push(await usageMessage(run.registry, schemaId, benchUsageRecord(`${run.id}-warm-${customer}`, customer, customer, Date.now())));
    }
    await producer.send({ topic, acks: -1, messages });
  }
  await settle();
  const warmUpSeconds = (performance.now() - warmUpStarted) / 1000;
  progress(`freshness: warm after ${warmUpSeconds.toFixed(1)} s`);

  const step = Math.max(1, Math.floor(customers / TRACKED_BALANCES));
  const tracked = Array.from({ length: Math.min(TRACKED_BALANCES, customers) }, (_, index) => index * step);
  // No replay runs meanwhile, so the generation stays the active one throughout.
  const generation = await activeGeneration(run.redis, run.keyPrefix);
  const queues = new Map<number, { key: string; next: bigint; pending: Expectation[] }>();
  for (const customer of tracked) {
    const snapshot = await readModel.getBalance(balanceIdOf(customer));
    if (snapshot === undefined) throw new Error(`no snapshot of ${balanceIdOf(customer)} to start from`);
    queues.set(customer, { key: balanceSnapshotKey(run.keyPrefix, generation, balanceIdOf(customer)), next: BigInt(snapshot.revision) + 1n, pending: [] });
  }

  // The floor: the same messages, received by a consumer that does nothing else. It joins after
  // the warm-up and starts at the end, so it sees only the measured messages.
  const deliveries: number[] = [];
  const floor = run.kafka.consumer({ groupId: run.group('fresh_floor'), allowAutoTopicCreation: false });
  await floor.connect();
  await floor.subscribe({ topic, fromBeginning: false });
  await floor.run({ eachMessage: async ({ message }) => void deliveries.push(Date.now() - Number(message.timestamp)) });

  progress(`freshness: ${formatCount(rate)} events/s for ${durationSeconds} s, ${tracked.length} balances tracked`);

  const latencies: number[] = [];
  let publishing = true;
  const poller = (async () => {
    for (;;) {
      const waiting = [...queues.values()].filter((queue) => queue.pending.length > 0);
      if (waiting.length === 0 && !publishing) return;
      const pipeline = run.redis.pipeline();
      for (const queue of waiting) pipeline.hget(queue.key, 'revision');
      const replies = (await pipeline.exec()) ?? [];
      const seenAt = Date.now();
      waiting.forEach((queue, index) => {
        const [error, value] = replies[index] ?? [];
        if (error) throw error;
        const revision = typeof value === 'string' ? BigInt(value) : -1n;
        while (queue.pending[0] !== undefined && queue.pending[0].revision <= revision) {
          latencies.push(seenAt - queue.pending.shift()!.publishedAt);
        }
      });
      await delay(POLL_INTERVAL_MS);
    }
  })();

  let published = 0;
  const started = performance.now();
  try {
    for (;;) {
      const elapsed = performance.now() - started;
      if (elapsed >= durationSeconds * 1000) break;
      const due = Math.floor((rate * elapsed) / 1000) - published;
      if (due > 0) {
        // The usage timestamp is the publish time, and the latency runs from it.
        const publishedAt = Date.now();
        const messages: Message[] = [];
        for (let sequence = published; sequence < published + due; sequence += 1) {
          const customer = sequence % TRACKED_SHARE === 0 ? tracked[(sequence / TRACKED_SHARE) % tracked.length]! : (sequence * 7919) % customers;
          const queue = queues.get(customer);
          if (queue !== undefined) {
            queue.pending.push({ revision: queue.next, publishedAt });
            queue.next += 1n;
          }
          messages.push(await usageMessage(run.registry, schemaId, benchUsageRecord(`${run.id}-fresh-${sequence}`, customer, sequence, publishedAt)));
        }
        await producer.send({ topic, acks: -1, messages });
        published += due;
      }
      await delay(5);
    }
    progress(`freshness: published ${formatCount(published)} events; waiting for the tracked snapshots`);
    publishing = false;
    await Promise.race([poller, delay(GRACE_MS)]);
  } finally {
    publishing = false;
    await producer.disconnect();
  }
  await floor.disconnect();
  const unobserved = [...queues.values()].reduce((sum, queue) => sum + queue.pending.length, 0);
  for (const queue of queues.values()) queue.pending.length = 0;
  await poller;
  // Everything metered and projected before the process stops: the lookups read these snapshots.
  await settle();
  const peakRssBytes = tally.peakRssBytes() ?? Number.NaN;
  await tally.kill('SIGTERM');
  return {
    rate,
    durationSeconds,
    published,
    warmUpSeconds,
    tally: summariseLatencies(latencies),
    unobserved,
    kafkaDelivery: summariseLatencies(deliveries),
    trackedBalances: tracked.length,
    pollIntervalMs: POLL_INTERVAL_MS,
    peakRssBytes,
  };
}
