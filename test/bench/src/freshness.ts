import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { createBalanceReadModel, type BalanceReadModel } from '@tally/projections';
import { waitFor, type TallyProcess } from '@tally/test-support';
import { balanceStreamId } from '@tally/domain';
import { CONSUMPTION_PROJECTION } from '@tally/ledger';
import { Partitioners, type Message } from 'kafkajs';
import type { KafkaFloorConsumerOptions } from './kafkaFloorConsumer';
import { startBenchChild } from './benchChildProcess';
import type { BenchRun } from './benchRun';
import { ensureProjected } from './ensureProjected';
import { BENCH_RESULTS_DIR } from './meteringThroughput';
import { waitForGroupAtEnd } from './waitForGroupAtEnd';
import { summariseLatencies, type LatencySummary } from './percentiles';
import { formatCount, progress } from './progress';
import { processCpuSeconds } from './processCpuSeconds';
import { balanceIdOf } from './benchBalances';
import { activeGeneration, balanceSnapshotKey, checkpointKey } from './snapshotKeys';
import { benchUsageRecord, createTopic, registerUsageSchema, usageMessage, USAGE_PARTITIONS } from './usageTopic';
import { consumerChunks, freshnessStages, projectedBatches, type StageBreakdown, type TrackedEvent } from './freshnessStages';
import { cpuProfiling, type CollectedProfile } from './cpuProfiles';

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
  /** With --freshness-stages: where the tracked events' time went (freshnessStages.ts). */
  readonly stages?: StageBreakdown;
  /** CPU seconds (user + system) the consumer+projector process used per second of publishing: 1 is a whole core. */
  readonly cpuShare?: number;
  /** With --freshness-stages: the process's log lines, written beside the results. */
  readonly logFile?: string;
  /** With --profile: the consumer+projector process's CPU profile, warm-up included. */
  readonly profile?: CollectedProfile;
}

/**
 * Few enough that reading them each time the projection's checkpoint moves (one pipeline of at
 * most 50 HGETs per projector batch) takes little of a Redis that the projector writes to and
 * redis-benchmark measures at only some 15,000 commands a second on this busy machine.
 */
const TRACKED_BALANCES = 50;
/** One event in this many goes to a tracked balance. */
const TRACKED_SHARE = 10;
/**
 * Between GETs of the generation's checkpoint, which the projector's write script moves with the
 * snapshots, atomically: the tracked hashes are read only when it moved. So an event is seen at
 * most this plus two round trips after its batch is written (with the 20 ms poll of every hash
 * before 2026-11-30, up to 20 ms plus one, which the bench counted as Tally's).
 */
const POLL_INTERVAL_MS = 2;
const GRACE_MS = 60_000;

/**
 * Waits until the process has committed the whole topic and projected everything it appended:
 * into the balance snapshots, and into the consumption buckets, which the projector role keeps
 * too (createConsumptionProjector). The process's consumption projection starts where the
 * schema's checkpoint stands, which after the full run's metering (a consumer-only process) is 0
 * with two million ledger events to go; measured while it caught up, that backlog's reads and
 * writes were the freshness (docs/benchmarks.md). Lag 0 of every subscriber before measuring.
 */
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
  await waitFor(async () => ((await readModel.servedCheckpoint()) ?? -1n) >= head, { description: 'the projector to reach the head of the ledger', timeoutMs: 10 * 60_000, intervalMs: 100 });
  let reported = 0;
  await waitFor(
    async () => {
      const { rows } = await run.pool.query<{ position: string }>('SELECT position FROM subscription_checkpoints WHERE name = $1', [CONSUMPTION_PROJECTION]);
      const position = BigInt(rows[0]?.position ?? '0');
      if (position < head && Date.now() - reported >= 10_000) {
        reported = Date.now();
        progress(`freshness: the consumption projection is at ${formatCount(Number(position))} of ${formatCount(Number(head))}`);
      }
      return position >= head;
    },
    { description: 'the consumption projection to reach the head of the ledger', timeoutMs: 60 * 60_000, intervalMs: 200 },
  );
}

interface Expectation {
  /** The snapshot reflects the event once its stream revision reaches this. */
  readonly revision: bigint;
  /** Set right before its batch's send: the instant the floor's message timestamp says too. */
  publishedAt: number;
  /** Where the send put it: the partition by the producer's own partitioner, the offset from the send's reply. */
  partition?: number;
  offset?: bigint;
  seenAt?: number;
}

/**
 * Publishes usage events at a steady rate to a warmed-up Tally process running the consumer and
 * the projector, and measures how long each takes to show in Redis. Each usage event is exactly one
 * ledger event on its balance (see BENCH_PRODUCT), so the k-th event published for a tracked
 * balance is reflected once the snapshot's revision is k past where it started. The tracked
 * balances' snapshot hashes are read in one pipeline each time the generation's checkpoint moves.
 */
export async function measureFreshness(run: BenchRun): Promise<FreshnessResult> {
  const { customers, rate, durationSeconds } = run.options;
  await ensureProjected(run);
  const topic = await run.createTopic('fresh', (name) => createTopic(run.admin, name));
  const dlq = await run.createTopic('fresh_dlq', (name) => createTopic(run.admin, name, 1));
  const schemaId = await registerUsageSchema(run.registry, topic);
  const readModel = createBalanceReadModel({ redis: run.redis, keyPrefix: run.keyPrefix });
  const groupId = run.group('fresh');
  const staged = run.options.freshnessStages;
  const profiling = run.options.profile ? cpuProfiling(BENCH_RESULTS_DIR, run.id, 'freshness') : undefined;
  if (profiling !== undefined) progress(`freshness: the consumer+projector process under --cpu-prof (into ${profiling.dir})`);
  const tally = await run.startTally(
    'consumer,projector',
    {
      TALLY_USAGE_TOPIC: topic,
      TALLY_DLQ_TOPIC: dlq,
      TALLY_CONSUMER_GROUP: groupId,
      // The consumer's and the projector's per-batch lines, whose times the stages are made of.
      ...(staged ? { TALLY_LOG_LEVEL: 'debug' } : {}),
    },
    profiling?.nodeArgs,
  );
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
  const queues = new Map<number, { key: string; next: bigint; pending: Expectation[]; all: Expectation[] }>();
  for (const customer of tracked) {
    const snapshot = await readModel.getBalance(balanceIdOf(customer));
    if (snapshot === undefined) throw new Error(`no snapshot of ${balanceIdOf(customer)} to start from`);
    queues.set(customer, { key: balanceSnapshotKey(run.keyPrefix, generation, balanceIdOf(customer)), next: BigInt(snapshot.revision) + 1n, pending: [], all: [] });
  }

  // The floor: the same messages, received by a consumer that does nothing else, in a process of
  // its own as Tally's consumer is (kafkaFloorConsumer.ts). It joins after the warm-up and starts
  // at the end, so it sees only the measured messages.
  const deliveries: number[] = [];
  /** `partition:offset` → when the floor received it, kept only for the stages. */
  const deliveredAt = new Map<string, number>();
  const floorOptions: KafkaFloorConsumerOptions = { clientId: `${run.id}-floor`, groupId: run.group('fresh_floor'), topic };
  const floor = await startBenchChild('kafkaFloorConsumer.js', floorOptions, {
    ready: 'ready',
    onLine(line) {
      const [partition, offset, receivedAt, timestamp] = line.split(' ');
      deliveries.push(Number(receivedAt) - Number(timestamp));
      if (staged) deliveredAt.set(`${partition}:${offset}`, Number(receivedAt));
    },
  });

  // The producer's partitioner (murmur2 on the key) applied to the bench's own topic, whose partitions all have leaders.
  const partitionOf = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: USAGE_PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));

  progress(`freshness: ${formatCount(rate)} events/s for ${durationSeconds} s, ${tracked.length} balances tracked`);

  const latencies: number[] = [];
  let publishing = true;
  const checkpointAt = checkpointKey(run.keyPrefix, generation);
  let lastCheckpoint: string | null = null;
  const poller = (async () => {
    for (;;) {
      if (!publishing && [...queues.values()].every((queue) => queue.pending.length === 0)) return;
      // The hashes hold at least what the checkpoint read before them says: a batch written after
      // this GET moves the checkpoint again, so no write goes unread. Events published before the
      // GET are all among those waiting (published after it, their batch moves it again).
      const checkpoint = await run.redis.get(checkpointAt);
      const waiting = [...queues.values()].filter((queue) => queue.pending.length > 0);
      if (checkpoint === lastCheckpoint || waiting.length === 0) {
        await delay(POLL_INTERVAL_MS);
        continue;
      }
      lastCheckpoint = checkpoint;
      const pipeline = run.redis.pipeline();
      for (const queue of waiting) pipeline.hget(queue.key, 'revision');
      const replies = (await pipeline.exec()) ?? [];
      const seenAt = Date.now();
      waiting.forEach((queue, index) => {
        const [error, value] = replies[index] ?? [];
        if (error) throw error;
        const revision = typeof value === 'string' ? BigInt(value) : -1n;
        while (queue.pending[0] !== undefined && queue.pending[0].revision <= revision) {
          const seen = queue.pending.shift()!;
          seen.seenAt = seenAt;
          latencies.push(seenAt - seen.publishedAt);
        }
      });
      await delay(POLL_INTERVAL_MS);
    }
  })();

  let published = 0;
  let cpuShare: number | undefined;
  const cpuBefore = processCpuSeconds(tally.pid);
  const started = performance.now();
  try {
    for (;;) {
      const elapsed = performance.now() - started;
      if (elapsed >= durationSeconds * 1000) break;
      const due = Math.floor((rate * elapsed) / 1000) - published;
      if (due > 0) {
        // The usage timestamp is when the batch is made; the latency runs from publishedAt, below.
        const usageAt = Date.now();
        const messages: Message[] = [];
        const sent: { expectation: Expectation; pending: Expectation[]; partition: number; index: number }[] = [];
        const perPartition = new Map<number, number>();
        for (let sequence = published; sequence < published + due; sequence += 1) {
          const customer = sequence % TRACKED_SHARE === 0 ? tracked[(sequence / TRACKED_SHARE) % tracked.length]! : (sequence * 7919) % customers;
          const message = await usageMessage(run.registry, schemaId, benchUsageRecord(`${run.id}-fresh-${sequence}`, customer, sequence, usageAt));
          // kafkajs sends each partition's messages in the order given, from the offset its reply names.
          const partition = partitionOf({ topic, partitionMetadata, message });
          const index = perPartition.get(partition) ?? 0;
          perPartition.set(partition, index + 1);
          const queue = queues.get(customer);
          if (queue !== undefined) {
            // Awaited by the poller once its publishedAt is known, right before the send.
            const expectation: Expectation = { revision: queue.next, publishedAt: Number.NaN };
            queue.all.push(expectation);
            sent.push({ expectation, pending: queue.pending, partition, index });
            queue.next += 1n;
          }
          messages.push(message);
        }
        // Both clocks start here, after the bench's own encoding (before 2026-12-07 (night) Tally's started
        // before it and the floor's at kafkajs's stamp inside send, so the encoding counted as
        // Tally's latency): publishedAt is taken right before the send, and it is also each
        // message's Kafka timestamp, from which the floor consumer measures delivery, instead of
        // the one kafkajs would stamp while building the request. The same instant for both.
        const publishedAt = Date.now();
        for (const message of messages) message.timestamp = String(publishedAt);
        for (const { expectation, pending } of sent) {
          expectation.publishedAt = publishedAt;
          pending.push(expectation);
        }
        const replies = await producer.send({ topic, acks: -1, messages });
        const baseOffsets = new Map(replies.map((reply) => [reply.partition, BigInt(reply.baseOffset ?? '-1')]));
        for (const { expectation, partition, index } of sent) {
          const base = baseOffsets.get(partition);
          if (base !== undefined && base >= 0n) Object.assign(expectation, { partition, offset: base + BigInt(index) });
        }
        published += due;
      }
      await delay(5);
    }
    const cpuAfter = processCpuSeconds(tally.pid);
    if (cpuBefore !== undefined && cpuAfter !== undefined) cpuShare = (cpuAfter - cpuBefore) / ((performance.now() - started) / 1000);
    progress(`freshness: published ${formatCount(published)} events; waiting for the tracked snapshots`);
    publishing = false;
    await Promise.race([poller, delay(GRACE_MS)]);
  } finally {
    publishing = false;
    await producer.disconnect();
  }
  await floor.stop();
  const unobserved = [...queues.values()].reduce((sum, queue) => sum + queue.pending.length, 0);
  for (const queue of queues.values()) queue.pending.length = 0;
  await poller;
  // Everything metered and projected before the process stops: the lookups read these snapshots.
  await settle();
  const peakRssBytes = tally.peakRssBytes() ?? Number.NaN;
  // SIGTERM: the process stops its roles and exits 0, which writes the profile.
  const exit = await tally.kill('SIGTERM');
  if (profiling !== undefined && exit !== 0) throw new Error(`the profiled consumer+projector process exited with ${exit} on SIGTERM`);
  const stages = staged ? await stagesOf(run, tracked, queues, deliveredAt, tally.lines) : undefined;
  const logFile = staged ? path.join(BENCH_RESULTS_DIR, `${run.id}-freshness.log`) : undefined;
  if (logFile !== undefined) {
    // The folder is made when the results are written, after this: a first run with stages needs it now.
    mkdirSync(BENCH_RESULTS_DIR, { recursive: true });
    writeFileSync(logFile, `${tally.lines.join('\n')}\n`);
  }
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
    ...(stages !== undefined ? { stages } : {}),
    ...(cpuShare !== undefined ? { cpuShare } : {}),
    ...(logFile !== undefined ? { logFile } : {}),
    ...(profiling !== undefined ? { profile: profiling.collect() } : {}),
  };
}

/** Each tracked event's ledger position and recorded_at, matched with the logged chunks and batches. */
async function stagesOf(
  run: BenchRun,
  tracked: readonly number[],
  queues: ReadonlyMap<number, { all: readonly Expectation[] }>,
  deliveredAt: ReadonlyMap<string, number>,
  lines: readonly string[],
): Promise<StageBreakdown> {
  const events: TrackedEvent[] = [];
  for (const customer of tracked) {
    const all = queues.get(customer)?.all ?? [];
    if (all.length === 0) continue;
    const { rows } = await run.pool.query<{ revision: string; position: string; recorded_at: Date }>(
      `SELECT e.revision, e.position, e.recorded_at FROM event_log AS e JOIN streams AS s ON s.stream_no = e.stream_no
        WHERE s.stream_id = $1 AND e.revision >= $2`,
      [balanceStreamId(balanceIdOf(customer)), all[0]!.revision.toString()],
    );
    const byRevision = new Map(rows.map((row) => [BigInt(row.revision), row]));
    for (const expectation of all) {
      if (expectation.partition === undefined || expectation.offset === undefined) continue;
      const row = byRevision.get(expectation.revision);
      const delivered = deliveredAt.get(`${expectation.partition}:${expectation.offset}`);
      events.push({
        publishedAt: expectation.publishedAt,
        partition: expectation.partition,
        offset: expectation.offset,
        ...(delivered !== undefined ? { deliveredAt: delivered } : {}),
        ...(row !== undefined ? { position: BigInt(row.position), recordedAt: row.recorded_at.getTime() } : {}),
        ...(expectation.seenAt !== undefined ? { seenAt: expectation.seenAt } : {}),
      });
    }
  }
  return freshnessStages(events, consumerChunks(lines), projectedBatches(lines));
}

