import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { BenchRun } from './benchRun';
import { runConsumerPerformance, type ConsumerPerformanceResult } from './consumerPerformance';
import { cpuProfiling, type CollectedProfile } from './cpuProfiles';
import { createEventsShapedTable } from './copyRows';
import { durableCopySink } from './durableCopySink';
import { waitForGroupAtEnd } from './waitForGroupAtEnd';
import { measureKafkajsDecodeCeiling, type ConsumeRate } from './kafkajsDecodeCeiling';
import { formatCount, progress } from './progress';
import { findLogLine, logTime } from './findLogLine';
import { createTopic, preloadUsageEvents, registerUsageSchema } from './usageTopic';

export interface MeteringResult {
  readonly events: number;
  readonly tally: ConsumeRate & {
    /** Peak resident memory (VmHWM) of the consumer process. */
    readonly peakRssBytes: number;
    /** CreditConsumed events in the ledger afterwards: one per usage event when nothing was lost or doubled. */
    readonly creditConsumedEvents: number;
    /** The consumer's own totals, from its shutdown log line. */
    readonly counters: unknown;
  };
  readonly kafkajsDecode: ConsumeRate;
  /** Decode, COPY each batch into an indexed events-shaped table, then commit: the durable ceiling. */
  readonly kafkajsDurable: ConsumeRate;
  readonly consumerPerformance: ConsumerPerformanceResult;
  readonly profile?: CollectedProfile;
}

export const BENCH_RESULTS_DIR = path.resolve(__dirname, '..', '..', '..', 'bench-results');

/**
 * Pre-loads the usage topic, then reads it three times from the start, each in a group of its
 * own: Kafka's ConsumerPerformance, a decode-only kafkajs consumer, and one Tally process with
 * the consumer role metering every event into the run's ledger.
 */
export async function measureMeteringThroughput(run: BenchRun): Promise<MeteringResult> {
  const { events, customers } = run.options;
  const topic = await run.createTopic('usage', (name) => createTopic(run.admin, name));
  // Must exist (the consumer creates no topics); valid events never reach it.
  const dlq = await run.createTopic('dlq', (name) => createTopic(run.admin, name, 1));
  const schemaId = await registerUsageSchema(run.registry, topic);
  await preloadUsageEvents({ kafka: run.kafka, registry: run.registry, schemaId, topic, events, customers, idPrefix: run.id });

  progress('metering ceiling (b): Kafka ConsumerPerformance');
  const consumerPerformance = await runConsumerPerformance(topic, run.group('java'), events);
  progress(`ConsumerPerformance: ${formatCount(consumerPerformance.fetchPerSecond)} msg/s`);

  progress('metering ceiling (a): kafkajs consumer, registry decode only');
  const kafkajsDecode = await measureKafkajsDecodeCeiling(run.admin, topic, run.group('kafkajs'), events);
  progress(`kafkajs decode-only: ${formatCount(kafkajsDecode.perSecond)} msg/s`);

  progress('metering ceiling (c): kafkajs consumer, decode, one COPY per batch into an indexed events-shaped table, then commit');
  // LIKE ... INCLUDING INDEXES: the key, the unique event id and (stream, revision) indexes and the checks.
  await createEventsShapedTable(run.pool, 'durable_ceiling', { indexed: true });
  const durable = await measureKafkajsDecodeCeiling(run.admin, topic, run.group('durable'), events, durableCopySink(run.pool, 'durable_ceiling'));
  progress(`kafkajs durable: ${formatCount(durable.perSecond)} msg/s`);

  const profiling = run.options.profile ? cpuProfiling(BENCH_RESULTS_DIR, run.id, 'consumer') : undefined;
  const heapDir = run.options.heapSnapshot ? path.join(BENCH_RESULTS_DIR, 'profiles', run.id, 'consumer-heap') : undefined;
  if (heapDir !== undefined) mkdirSync(heapDir, { recursive: true });
  progress(
    `metering: one Tally consumer process${profiling !== undefined ? ` under --cpu-prof (into ${profiling.dir})` : ''}` +
      `${heapDir !== undefined ? `, a heap snapshot half-way (into ${heapDir})` : ''}`,
  );
  const nodeArgs = [
    ...(profiling?.nodeArgs ?? []),
    ...(heapDir !== undefined ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`] : []),
    ...(run.options.consumerMaxOldSpaceMib !== undefined ? [`--max-old-space-size=${run.options.consumerMaxOldSpaceMib}`] : []),
  ];
  const tally = await meterWithTally(run, { topic, dlq, events, groupSuffix: 'tally', nodeArgs, signalHalfWay: heapDir !== undefined });
  const result: MeteringResult = {
    events,
    tally,
    kafkajsDecode,
    kafkajsDurable: durable,
    consumerPerformance,
  };
  progress(`Tally consumer: ${formatCount(result.tally.perSecond)} events/s, ${formatCount(result.tally.creditConsumedEvents)} CreditConsumed in the ledger`);
  return profiling === undefined ? result : { ...result, profile: profiling.collect() };
}

export type TallyMeteringRate = MeteringResult['tally'];

const countCreditConsumed = async (run: BenchRun): Promise<number> =>
  Number((await run.pool.query<{ count: string }>("SELECT count(*) FROM events WHERE type = 'CreditConsumed'")).rows[0]!.count);

/**
 * One Tally process with the consumer role meters the pre-loaded topic from the start, timed from
 * its `usage consumer started` line to the poll that sees its group committed to the end; the
 * CreditConsumed events it added to the ledger are counted (one per usage event when nothing was
 * lost or doubled).
 */
export async function meterWithTally(
  run: BenchRun,
  options: {
    readonly topic: string;
    readonly dlq: string;
    readonly events: number;
    readonly groupSuffix: string;
    readonly nodeArgs?: readonly string[];
    /** Half-way through, the consumer is sent SIGUSR2 (it then writes a heap snapshot: --heap-snapshot). */
    readonly signalHalfWay?: boolean;
  },
): Promise<TallyMeteringRate> {
  const { topic, dlq, events } = options;
  const groupId = run.group(options.groupSuffix);
  const before = await countCreditConsumed(run);
  const tally = await run.startTally('consumer', { TALLY_USAGE_TOPIC: topic, TALLY_DLQ_TOPIC: dlq, TALLY_CONSUMER_GROUP: groupId }, options.nodeArgs ?? []);
  let exitedWith: number | string | undefined;
  void tally.exited().then((code) => (exitedWith = code));
  let signalled = !options.signalHalfWay;
  const { endedAt, failedPolls } = await waitForGroupAtEnd({
    admin: run.admin,
    groupId,
    topic,
    timeoutMs: 60 * 60_000,
    onProgress: (done, total) => {
      if (signalled || done * 2n < total) return;
      signalled = true;
      progress(`metering: half-way (${formatCount(Number(done))} committed), signalling the consumer for a heap snapshot`);
      process.kill(tally.pid, 'SIGUSR2');
    },
    failed: () => (exitedWith === undefined ? undefined : `exited with ${exitedWith}: ${tally.lines.slice(-5).join('\n')}`),
  });
  const peakRssBytes = tally.peakRssBytes() ?? Number.NaN;
  // The consumer logs this once it has joined the group; its first fetch follows at once.
  const started = logTime(tally.lines, 'usage consumer started');
  // SIGTERM: the consumer leaves its group and the process exits 0, which writes the profile.
  const exit = await tally.kill('SIGTERM');
  if (exit !== 0) throw new Error(`the Tally consumer exited with ${exit} on SIGTERM`);
  const seconds = (endedAt - started) / 1000;
  return {
    messages: events,
    seconds,
    perSecond: events / seconds,
    failedPolls,
    peakRssBytes,
    creditConsumedEvents: (await countCreditConsumed(run)) - before,
    counters: findLogLine(tally.lines, 'usage consumer stopped')?.counters,
  };
}
