import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { analyzeSchema } from './analyzeSchema';
import { formatStatementTable } from './pgStatements';
import { measureAppendCeiling } from './appendCeiling';
import { measureBalanceLookups, measureEntitlements, measureUsageLookups } from './balanceLookups';
import { measureStatements } from './balanceStatements';
import { measureBusyBalanceWrites } from './busyBalanceWrites';
import { bareNodePeakRssBytes } from './bareNodePeakRss';
import { BenchUsageError, parseBenchOptions, USAGE } from './benchOptions';
import { formatGoalTable, goalChecks } from './benchGoals';
import { derivedFigures, disturbances, formatResultTable, resultRows, type BenchResults } from './benchResults';
import { createBenchRun } from './benchRun';
import { formatCpuProfileSummary } from './cpuProfileSummary';
import { measureFreshness } from './freshness';
import { formatHeapProfileSummary } from './heapProfileSummary';
import { formatStages } from './freshnessStages';
import { appendUsageLedger } from './ledgerWorkload';
import { measureGrowth } from './meteringGrowth';
import { BENCH_RESULTS_DIR, measureMeteringThroughput } from './meteringThroughput';
import { formatCount, progress } from './progress';
import { measureReplayThroughput } from './replayThroughput';
import { benchBalances, openBalances, registerBenchBalances } from './benchBalances';

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: path.resolve(__dirname, '..', '..', '..') }).toString('utf8').trim();
}

/**
 * `npm run bench`: every measurement of issue 5 in one run, each beside a ceiling measured in the
 * same run on the same machine (a shared 2-core one, where only ratios travel). It asserts nothing
 * about speed; it prints a table and writes the figures to bench-results/.
 */
async function main(): Promise<void> {
  const options = parseBenchOptions(process.argv.slice(2));
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const run = await createBenchRun(options);
  // Ctrl-C: the schemas, topics and keys go anyway (the Tally children get the SIGINT themselves).
  process.once('SIGINT', () => {
    progress('interrupted; cleaning up');
    void run.close().finally(() => process.exit(130));
  });
  const results: BenchResults = {};
  try {
    progress(`run ${run.id}: ${formatCount(options.customers)} balances in schema ${run.schema}; measuring ${[...options.only].join(', ')}`);
    const balances = benchBalances(options.customers);
    await registerBenchBalances(run.pool, run.catalog, balances);
    await openBalances(run.eventStore, balances, startedAt.toISOString());
    await analyzeSchema(run.pool);

    if (options.only.has('metering')) results.metering = await measureMeteringThroughput(run);
    if (options.growth !== undefined) results.growth = await measureGrowth(run, options.growth);
    if (options.only.has('append')) results.append = await measureAppendCeiling(run);
    // The usage events the ledger holds, `<prefix>-<n>` (usage n of customer n mod customers): metering's.
    let usageIdPrefix = results.metering !== undefined ? run.id : undefined;
    const ledgerUsage = async (why: string, events: number): Promise<string> => {
      progress(`${why} without metering: writing ${formatCount(events)} usage deductions into the ledger first (untimed)`);
      await appendUsageLedger(run.eventStore, balances, events, `${run.id}-ledger`);
      return `${run.id}-ledger`;
    };
    if (options.only.has('replay')) {
      usageIdPrefix ??= await ledgerUsage('replay', options.events);
      // Metering or the line above just loaded the ledger the replay reads.
      await analyzeSchema(run.pool);
      results.replay = await measureReplayThroughput(run);
    }
    // After the replay: it leaves the snapshots these two need, so they need not make them.
    if (options.only.has('freshness')) results.freshness = await measureFreshness(run);
    if (options.only.has('lookups')) results.lookups = await measureBalanceLookups(run);
    if (options.only.has('entitlements')) results.entitlements = await measureEntitlements(run);
    if (options.only.has('usage')) {
      // One usage event per customer at least, so that every lookup finds its event.
      usageIdPrefix ??= await ledgerUsage('usage lookups', options.customers);
      results.usage = await measureUsageLookups(run, usageIdPrefix);
    }
    if (options.only.has('statements')) results.statements = await measureStatements(run);
    if (options.only.has('writes')) results.writes = await measureBusyBalanceWrites(run);
    if (results.metering !== undefined || results.lookups !== undefined) {
      results.memory = {
        bareNodeBytes: bareNodePeakRssBytes(),
        ...(results.metering !== undefined ? { consumerBytes: results.metering.tally.peakRssBytes } : {}),
        ...(results.lookups !== undefined ? { apiBytes: results.lookups.peakRssBytes } : {}),
      };
    }
  } finally {
    await run.close();
  }

  const rows = resultRows(results);
  const notes = disturbances(results);
  const derived = derivedFigures(results);
  const goals = goalChecks(results);
  process.stdout.write(`\n${formatResultTable(rows)}\n`);
  if (derived.length > 0) process.stdout.write(`\n${derived.map((line) => `- ${line}`).join('\n')}\n`);
  if (goals.length > 0) process.stdout.write(`\n${formatGoalTable(goals)}\n`);
  if (notes.length > 0) process.stdout.write(`\nnotes:\n${notes.map((note) => `- ${note}`).join('\n')}\n`);
  if (results.freshness?.stages !== undefined) process.stdout.write(`\n${formatStages(results.freshness.stages).join('\n')}\n`);
  if (results.freshness?.cpuShare !== undefined) process.stdout.write(`freshness: the consumer+projector process used ${results.freshness.cpuShare.toFixed(2)} CPU seconds per second while publishing\n`);
  for (const [what, profile] of [
    ['consumer', results.metering?.profile],
    ['consumer+projector (freshness, warm-up included)', results.freshness?.profile],
    ['API', results.lookups?.profile],
    ['API (entitlements)', results.entitlements?.profile],
    ['API (usage lookups, dead letters)', results.usage?.profile],
    ['API (statements of the long ledger)', results.statements?.profile],
    ['replay (bench process)', results.replay?.profile],
  ] as const) {
    if (profile !== undefined) process.stdout.write(`\n${what} CPU profile (${profile.file}):\n${formatCpuProfileSummary(profile.summary)}\n`);
  }
  for (const [what, promoted] of [
    ['consumer', results.metering?.promoted],
    [`consumer at ${results.growth?.small.customers ?? 0} customers (growth)`, results.growth?.small.promoted],
    [`consumer at ${results.growth?.large.customers ?? 0} customers (growth)`, results.growth?.large.promoted],
  ] as const) {
    if (promoted !== undefined) process.stdout.write(`\n${what}, allocations promoted to the old generation (${promoted.file}):\n${formatHeapProfileSummary(promoted.summary)}\n`);
  }
  for (const [what, statements] of [
    ['the metering consumer', results.metering?.statements],
    [`the consumer at ${formatCount(results.growth?.small.customers ?? 0)} customers (growth)`, results.growth?.small.statements],
    [`the consumer at ${formatCount(results.growth?.large.customers ?? 0)} customers (growth)`, results.growth?.large.statements],
  ] as const) {
    if (statements !== undefined) process.stdout.write(`\nPostgreSQL statements while ${what} ran (pg_stat_statements):\n${formatStatementTable(statements)}\n`);
  }

  mkdirSync(BENCH_RESULTS_DIR, { recursive: true });
  const file = path.join(BENCH_RESULTS_DIR, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    commit: git('rev-parse', 'HEAD'),
    // The checkout is shared: say whether the measured code had changes beyond the commit.
    uncommittedChanges: git('status', '--porcelain', '--untracked-files=no').length > 0,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    options: { ...options, only: [...options.only] },
    machine: { cpus: os.cpus().length, memoryBytes: os.totalmem(), loadBefore, loadAfter: os.loadavg(), node: process.version },
    rows,
    derived,
    goals,
    notes,
    results,
  };
  writeFileSync(file, `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value), 2)}\n`);
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), file)}\n`);
}

// A bench is a command: once its results are written it exits. The full run's last phase leaves a
// handle open in one of its client libraries (seen 2026-11-30: the process idled for minutes after
// writing its results, not found which), and that must not hold up whoever runs it.
main().then(() => process.exit(0)).catch((error: unknown) => {
  if (error instanceof BenchUsageError) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
