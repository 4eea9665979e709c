import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CONSUMER_MAX_OLD_SPACE_MIB, CONSUMER_MAX_SEMI_SPACE_MIB } from '@tally/metering';
import type { BenchOptions } from './benchOptions';
import type { BenchRun } from './benchRun';
import { runConsumerPerformance, type ConsumerPerformanceResult } from './consumerPerformance';
import { cpuProfiling, type CollectedProfile } from './cpuProfiles';
import { promotedAllocations, type CollectedHeapProfile } from './promotedAllocations';
import { copyInto, createEventsShapedTable } from './copyRows';
import { durableCopySink } from './durableCopySink';
import { waitForGroupAtEnd } from './waitForGroupAtEnd';
import { ceilingConsumerSettings, measureKafkajsDecodeCeiling, type ConsumeRate } from './kafkajsDecodeCeiling';
import { openStatementWindow, type StatementFigures } from './pgStatements';
import { formatCount, progress } from './progress';
import { commandCpuSeconds, cpuSecondsSpent, msPerThousand, processCpuSeconds } from './processCpuSeconds';
import { findLogLine, logTime } from './findLogLine';
import { createTopic, preloadUsageEvents, registerUsageSchema, USAGE_PARTITIONS } from './usageTopic';
import { creditProductFromDto } from '@tally/domain';
import { analyzeSchema } from './analyzeSchema';
import { BENCH_WARNED_PRODUCT, openBalances, registerBalanceRows, warnedBalances, warnedOpening } from './benchBalances';
import { ledgerStorage, type LedgerStorage } from './tableStorage';

export interface MeteringResult {
  readonly events: number;
  /** Balances each customer holds, each charged by every usage event: 2 by default, 1 with --one-balance. */
  readonly balancesPerCustomer: number;
  /**
   * The ledger afterwards (openings included), event_log and the append markers every usage event
   * wrote beside its charges: bytes per ledger event, the figure issue 11's storage goal holds.
   */
  readonly ledgerStorage: LedgerStorage;
  readonly tally: ConsumeRate & {
    /** Peak resident memory (VmHWM) of the consumer process. */
    readonly peakRssBytes: number;
    /** CreditConsumed events in the ledger afterwards: one per usage event and balance when nothing was lost or doubled. */
    readonly creditConsumedEvents: number;
    /** LowBalanceWarned events it appended (the workload's second balances cross their threshold). */
    readonly lowBalanceWarnedEvents: number;
    /** Every ledger event it appended, per second of its run. */
    readonly ledgerEventsPerSecond: number;
    /** The consumer's own totals, from its shutdown log line. */
    readonly counters: unknown;
  };
  readonly kafkajsDecode: ConsumeRate;
  /** Decode, COPY each batch into an indexed events-shaped table, then commit: the durable ceiling. */
  readonly kafkajsDurable: ConsumeRate;
  readonly consumerPerformance: ConsumerPerformanceResult;
  readonly profile?: CollectedProfile;
  /** `--promoted-allocations`: what the consumer promoted to the old generation, by allocating function. */
  readonly promoted?: CollectedHeapProfile;
  /** `--pg-statements`: the statements PostgreSQL ran while the consumer ran. */
  readonly statements?: StatementFigures[];
}

export const BENCH_RESULTS_DIR = path.resolve(__dirname, '..', '..', '..', 'bench-results');

/**
 * Pre-loads the usage topic, then reads it three times from the start, each in a group of its
 * own: Kafka's ConsumerPerformance, a decode-only kafkajs consumer, and one Tally process with
 * the consumer role metering every event into the run's ledger, onto two balances per customer
 * (one of them crossing its low-balance threshold) unless --one-balance.
 */
export async function measureMeteringThroughput(run: BenchRun): Promise<MeteringResult> {
  const { events, customers, oneBalance } = run.options;
  if (!oneBalance) {
    // Untimed, like the first balances (bench main).
    await openSecondBalances(run, customers, new Date().toISOString());
    await analyzeSchema(run.pool);
  }
  const topic = await run.createTopic('usage', (name) => createTopic(run.admin, name));
  // Must exist (the consumer creates no topics); valid events never reach it.
  const dlq = await run.createTopic('dlq', (name) => createTopic(run.admin, name, 1));
  const schemaId = await registerUsageSchema(run.registry, topic);
  await preloadUsageEvents({ kafka: run.kafka, registry: run.registry, schemaId, topic, events, customers, idPrefix: run.id });

  progress('metering ceiling (b): Kafka ConsumerPerformance');
  const consumerPerformance = await runConsumerPerformance(topic, run.group('java'), events);
  progress(
    consumerPerformance.failure === undefined
      ? `ConsumerPerformance: ${formatCount(consumerPerformance.fetchPerSecond)} msg/s`
      : `ConsumerPerformance: ${consumerPerformance.failure}; no ceiling from it`,
  );

  progress('metering ceiling (a): kafkajs consumer, registry decode only');
  const kafkajsDecode = await measureKafkajsDecodeCeiling(run.admin, topic, run.group('kafkajs'), events);
  progress(`kafkajs decode-only: ${formatCount(kafkajsDecode.perSecond)} msg/s`);

  progress("metering ceiling (c): kafkajs consumer, decode, one COPY per chunk of the consumer's batch size into an indexed events-shaped table, then commit");
  // LIKE ... INCLUDING INDEXES: the key, the unique event id and (stream, revision) indexes and the checks.
  await createEventsShapedTable(run.pool, 'durable_ceiling', { indexed: true });
  // One COPY and commit per chunk of the consumer's batch size, as Tally appends and commits.
  const sink = durableCopySink((rows) => copyInto(run.pool, 'durable_ceiling', [rows]), ceilingConsumerSettings(USAGE_PARTITIONS).chunkSize);
  const durable = await measureKafkajsDecodeCeiling(run.admin, topic, run.group('durable'), events, sink);
  progress(`kafkajs durable: ${formatCount(durable.perSecond)} msg/s`);

  const profiling = run.options.profile ? cpuProfiling(BENCH_RESULTS_DIR, run.id, 'consumer') : undefined;
  const heapDir = run.options.heapSnapshot ? path.join(BENCH_RESULTS_DIR, 'profiles', run.id, 'consumer-heap') : undefined;
  if (heapDir !== undefined) mkdirSync(heapDir, { recursive: true });
  const promoted = run.options.promotedAllocations ? promotedAllocations(BENCH_RESULTS_DIR, run.id, 'consumer-promoted') : undefined;
  progress(
    `metering: one Tally consumer process${profiling !== undefined ? ` under --cpu-prof (into ${profiling.dir})` : ''}` +
      `${heapDir !== undefined ? `, a heap snapshot half-way (into ${heapDir})` : ''}` +
      `${promoted !== undefined ? `, its promoted allocations sampled (into ${promoted.dir})` : ''}`,
  );
  const nodeArgs = [
    ...(profiling?.nodeArgs ?? []),
    ...(promoted?.nodeArgs ?? []),
    ...(heapDir !== undefined ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapDir}`] : []),
    ...consumerHeapArgs(run.options),
  ];
  const window = run.options.pgStatements ? await openStatementWindow(run.pool, 'the metering consumer') : undefined;
  const tally = await meterWithTally(run, { topic, dlq, events, groupSuffix: 'tally', nodeArgs, signalHalfWay: heapDir !== undefined });
  const statements = await window?.close();
  const result: MeteringResult = {
    events,
    balancesPerCustomer: oneBalance ? 1 : 2,
    ledgerStorage: await ledgerStorage(run.pool),
    tally,
    kafkajsDecode,
    kafkajsDurable: durable,
    consumerPerformance,
  };
  progress(
    `Tally consumer: ${formatCount(result.tally.perSecond)} usage events/s (${formatCount(result.tally.ledgerEventsPerSecond)} ledger events/s), ` +
      `${formatCount(result.tally.creditConsumedEvents)} CreditConsumed and ${formatCount(result.tally.lowBalanceWarnedEvents)} LowBalanceWarned in the ledger, ` +
      `${Math.round(result.ledgerStorage.bytesPerEvent)} bytes per ledger event (${Math.round(result.ledgerStorage.markerBytesPerEvent)} of them append markers)`,
  );
  return {
    ...result,
    ...(profiling !== undefined ? { profile: profiling.collect() } : {}),
    ...(promoted !== undefined ? { promoted: promoted.collect() } : {}),
    ...(statements !== undefined ? { statements } : {}),
  };
}

export type TallyMeteringRate = MeteringResult['tally'];

/**
 * The metering workload's second balance (BENCH_WARNED_PRODUCT) for each of the first `customers`
 * customers that has none yet, opened just above its threshold so that `customers` customers'
 * share of the run's events crosses it half-way. The metering phase opens them for its customers;
 * the growth run for the rest of its larger size, so both sizes meter two balances per customer.
 */
export async function openSecondBalances(run: BenchRun, customers: number, at: string): Promise<void> {
  const { rows } = await run.pool.query<{ opened: string }>('SELECT count(*) AS opened FROM credit_balances WHERE product_id = $1', [BENCH_WARNED_PRODUCT.id]);
  // Always opened in index order from the first customer.
  const opened = Number(rows[0]!.opened);
  if (opened >= customers) return;
  if (opened === 0) await run.catalog.createProduct(creditProductFromDto(BENCH_WARNED_PRODUCT));
  const second = warnedBalances(customers).slice(opened);
  progress(`a second balance (${BENCH_WARNED_PRODUCT.id}, low-balance threshold crossed half-way) for each of ${formatCount(second.length)} customers (untimed)`);
  await registerBalanceRows(run.pool, second);
  await openBalances(run.eventStore, second, at, warnedOpening(run.options.events, customers));
}

/**
 * The consumer's V8 limits: those a consumer process is sized for (CONSUMER_NODE_OPTIONS, as
 * README's "Memory of a consumer process" says to run it), unless given, or Node's own defaults
 * with --consumer-default-heap.
 */
export function consumerHeapArgs(options: BenchOptions): string[] {
  if (options.consumerDefaultHeap) return [];
  return [
    `--max-old-space-size=${options.consumerMaxOldSpaceMib ?? CONSUMER_MAX_OLD_SPACE_MIB}`,
    `--max-semi-space-size=${options.consumerMaxSemiSpaceMib ?? CONSUMER_MAX_SEMI_SPACE_MIB}`,
  ];
}

/** Ledger events so far: all of them, CreditConsumed and LowBalanceWarned. */
async function countLedgerEvents(run: BenchRun): Promise<{ all: number; consumed: number; warned: number }> {
  const { rows } = await run.pool.query<{ all: string; consumed: string; warned: string }>(
    "SELECT count(*) AS all, count(*) FILTER (WHERE type = 'CreditConsumed') AS consumed, count(*) FILTER (WHERE type = 'LowBalanceWarned') AS warned FROM events",
  );
  return { all: Number(rows[0]!.all), consumed: Number(rows[0]!.consumed), warned: Number(rows[0]!.warned) };
}

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
  const before = await countLedgerEvents(run);
  const postgresBefore = commandCpuSeconds('postgres');
  const tally = await run.startTally(
    'consumer',
    { TALLY_USAGE_TOPIC: topic, TALLY_DLQ_TOPIC: dlq, TALLY_CONSUMER_GROUP: groupId },
    options.nodeArgs ?? consumerHeapArgs(run.options),
  );
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
  // The consumer's CPU from its start (loading modules, joining the group: a second or less
  // against the tens of seconds a measurement takes) to the end of the topic; PostgreSQL's over the same time.
  const cpuMsPerThousand = msPerThousand(processCpuSeconds(tally.pid), events);
  const postgresCpuMsPerThousand = msPerThousand(cpuSecondsSpent(postgresBefore, commandCpuSeconds('postgres')), events);
  // The consumer logs this once it has joined the group; its first fetch follows at once.
  const started = logTime(tally.lines, 'usage consumer started');
  // SIGTERM: the consumer leaves its group and the process exits 0, which writes the profile.
  const exit = await tally.kill('SIGTERM');
  if (exit !== 0) throw new Error(`the Tally consumer exited with ${exit} on SIGTERM`);
  const seconds = (endedAt - started) / 1000;
  const after = await countLedgerEvents(run);
  return {
    messages: events,
    seconds,
    perSecond: events / seconds,
    failedPolls,
    peakRssBytes,
    ...(cpuMsPerThousand !== undefined ? { cpuMsPerThousand } : {}),
    ...(postgresCpuMsPerThousand !== undefined ? { postgresCpuMsPerThousand } : {}),
    creditConsumedEvents: after.consumed - before.consumed,
    lowBalanceWarnedEvents: after.warned - before.warned,
    ledgerEventsPerSecond: (after.all - before.all) / seconds,
    counters: findLogLine(tally.lines, 'usage consumer stopped')?.counters,
  };
}
