import type { AppendCeilingResult } from './appendCeiling';
import type { BusyWritesResult } from './busyBalanceWrites';
import type { EntitlementsResult, LookupsResult, UsageLookupsResult } from './balanceLookups';
import type { StatementsResult } from './balanceStatements';
import type { FreshnessResult } from './freshness';
import type { GrowthResult } from './meteringGrowth';
import type { MeteringResult } from './meteringThroughput';
import type { ReplayResult } from './replayThroughput';

export interface MemoryResult {
  /** VmHWM of a Node process that loads nothing: the least any Node process holds on this machine. */
  readonly bareNodeBytes: number;
  readonly consumerBytes?: number;
  readonly apiBytes?: number;
}

export interface BenchResults {
  metering?: MeteringResult;
  growth?: GrowthResult;
  append?: AppendCeilingResult;
  replay?: ReplayResult;
  freshness?: FreshnessResult;
  lookups?: LookupsResult;
  entitlements?: EntitlementsResult;
  usage?: UsageLookupsResult;
  statements?: StatementsResult;
  writes?: BusyWritesResult;
  memory?: MemoryResult;
}

/**
 * One line of the table. The ratio is always the share of the ceiling Tally reaches, so 1.00
 * means "as good as this machine allows": Tally ÷ ceiling for rates, floor ÷ Tally for latencies
 * and memory, where less is better.
 */
export interface ResultRow {
  readonly measurement: string;
  readonly unit: string;
  readonly tally: number;
  readonly ceilingName: string;
  readonly ceiling: number;
  readonly ratio: number;
}

function higher(measurement: string, unit: string, tally: number, ceilingName: string, ceiling: number): ResultRow {
  return { measurement, unit, tally, ceilingName, ceiling, ratio: tally / ceiling };
}

function lower(measurement: string, unit: string, tally: number, ceilingName: string, ceiling: number): ResultRow {
  return { measurement, unit, tally, ceilingName, ceiling, ratio: ceiling / tally };
}

export const MIB = 1024 * 1024;

export function resultRows(results: BenchResults): ResultRow[] {
  const rows: ResultRow[] = [];
  const { metering, append, freshness, lookups, entitlements, usage, statements, replay, writes, memory } = results;
  if (metering !== undefined) {
    rows.push(higher('1. metering, 1 consumer process', 'usage events/s', metering.tally.perSecond, 'kafkajs consumer, decode only', metering.kafkajsDecode.perSecond));
    rows.push(
      higher('1. metering, 1 consumer process', 'usage events/s', metering.tally.perSecond, "kafkajs decode + COPY and commit per 1,000 (the consumer's chunk)", metering.kafkajsDurable.perSecond),
    );
    rows.push(higher('1. metering, 1 consumer process', 'usage events/s', metering.tally.perSecond, 'Kafka ConsumerPerformance', metering.consumerPerformance.fetchPerSecond));
  }
  if (results.growth !== undefined) {
    const { small, large } = results.growth;
    rows.push(
      higher(
        `1. metering at ${formatHistory(large.customers)} customers${results.growth.history > 0 ? `, ${formatHistory(results.growth.history)} events of history` : ''}`,
        'usage events/s',
        large.tally.perSecond,
        `same, at ${formatHistory(small.customers)} customers`,
        small.tally.perSecond,
      ),
    );
  }
  if (append !== undefined) {
    rows.push(higher(`2. ledger append, ${append.batchSize}/call`, 'events/s', append.appendMany.perSecond, 'one COPY into a bare table', append.copyAll.perSecond));
    rows.push(higher(`2. ledger append, ${append.batchSize}/call`, 'events/s', append.appendMany.perSecond, `one COPY per ${append.batchSize} rows`, append.copyPerBatch.perSecond));
    rows.push(higher(`2. ledger append, ${append.batchSize}/call`, 'events/s', append.appendMany.perSecond, 'one COPY into an indexed copy of events', append.copyIndexed.perSecond));
    rows.push(
      lower(
        '11. storage per appended event, append phase (event_log heap + indexes, no markers)',
        'bytes',
        append.storage.bytesPerRow,
        'same rows, bare table, no index',
        append.bareStorage.bytesPerRow,
      ),
    );
  }
  if (freshness !== undefined) {
    for (const percentile of ['p50', 'p95', 'p99', 'max'] as const) {
      rows.push(lower(`3. freshness ${percentile}, ${freshness.rate}/s`, 'ms', freshness.tally[percentile], `Kafka delivery ${percentile}`, freshness.kafkaDelivery[percentile]));
    }
  }
  if (lookups !== undefined) {
    rows.push(higher('4. GET /v1/credit-balances/{id}', 'requests/s', lookups.api.perSecond, 'redis-benchmark HGETALL', lookups.redis.perSecond));
    rows.push(higher('4. GET /v1/credit-balances/{id}', 'requests/s', lookups.api.perSecond, 'bare Fastify + ioredis route', lookups.bareRoute.perSecond));
    rows.push(lower('4. GET /v1/credit-balances/{id} p99', 'ms', lookups.api.p99Ms, 'redis-benchmark HGETALL p99', lookups.redis.p99Ms));
    rows.push(lower('4. GET /v1/credit-balances/{id} p99', 'ms', lookups.api.p99Ms, 'bare Fastify + ioredis route p99', lookups.bareRoute.p99Ms));
  }
  if (entitlements !== undefined) {
    const route = '8. GET /v1/customers/{id}/entitlements/{product}';
    rows.push(higher(route, 'requests/s', entitlements.api.perSecond, 'redis-benchmark HGETALL', entitlements.redis.perSecond));
    rows.push(lower(`${route} p99`, 'ms', entitlements.api.p99Ms, 'redis-benchmark HGETALL p99', entitlements.redis.p99Ms));
  }
  if (usage !== undefined) {
    const route = `9. GET /v1/customers/{id}/usage-events/{eventId}, ${usage.deadLetters} dead letters`;
    rows.push(higher(route, 'requests/s', usage.fullLog.perSecond, 'same, no dead letters', usage.emptyLog.perSecond));
    rows.push(lower(`${route} p99`, 'ms', usage.fullLog.p99Ms, 'same, no dead letters, p99', usage.emptyLog.p99Ms));
  }
  if (statements !== undefined) {
    const route = `10. GET /v1/credit-balances/{id}/statement, a month of ${formatHistory(statements.periodEntries)} entries after ${formatHistory(statements.historyEntries)}`;
    rows.push(higher(route, 'requests/s', statements.longLedger.perSecond, 'same month, a balance of it alone', statements.shortLedger.perSecond));
    rows.push(lower(`${route} p99`, 'ms', statements.longLedger.p99Ms, 'same month alone, p99', statements.shortLedger.p99Ms));
    // The same entries: the month's, recorded on its 15th.
    const fromNine = `${route}, from 09:00 UTC on the 1st`;
    rows.push(higher(fromNine, 'requests/s', statements.fromNine.perSecond, 'same month alone, from midnight', statements.shortLedger.perSecond));
    rows.push(lower(`${fromNine} p99`, 'ms', statements.fromNine.p99Ms, 'same month alone, from midnight, p99', statements.shortLedger.p99Ms));
    const before = `10. GET /v1/credit-balances/{id}/statement, the month before it, with that month's ${formatHistory(statements.periodEntries)} entries after its end`;
    rows.push(higher(before, 'requests/s', statements.monthBefore.perSecond, 'same month alone', statements.shortLedger.perSecond));
    rows.push(lower(`${before} p99`, 'ms', statements.monthBefore.p99Ms, 'same month alone, p99', statements.shortLedger.p99Ms));
    const year = `10. GET /v1/credit-balances/{id}/statement, the year of ${formatHistory(statements.historyEntries + statements.periodEntries)} entries to that month's end`;
    rows.push(higher(year, 'requests/s', statements.year.perSecond, 'same month alone', statements.shortLedger.perSecond));
    rows.push(lower(`${year} p99`, 'ms', statements.year.p99Ms, 'same month alone, p99', statements.shortLedger.p99Ms));
  }
  if (replay !== undefined) {
    rows.push(higher('5. replay (replayBalances)', 'events/s', replay.replay.perSecond, 'sequential COPY read of events', replay.sequentialRead.perSecond));
  }
  if (writes !== undefined) {
    const busy = `7. top-up, ${formatHistory(writes.history)}-event balance being metered`;
    for (const percentile of ['p50', 'p99'] as const) {
      rows.push(
        lower(`${busy}, ${percentile}`, 'ms', writes.busy.answered?.[percentile] ?? Number.NaN, `same top-up, quiet balance, ${percentile}`, writes.quiet.answered?.[percentile] ?? Number.NaN),
      );
    }
  }
  if (memory?.consumerBytes !== undefined) {
    rows.push(lower('6. peak RSS, consumer process', 'MiB', memory.consumerBytes / MIB, 'bare Node process', memory.bareNodeBytes / MIB));
  }
  if (memory?.apiBytes !== undefined) {
    rows.push(lower('6. peak RSS, API process', 'MiB', memory.apiBytes / MIB, 'bare Node process', memory.bareNodeBytes / MIB));
  }
  return rows;
}

/**
 * Freshness as the issue's goal states it: what Tally adds over the Kafka delivery floor of the
 * same run, per percentile, in ms (the table's ratio divides them instead).
 */
export function freshnessAddedMs(freshness: FreshnessResult): Record<'p50' | 'p95' | 'p99' | 'max', number> {
  const added = (percentile: 'p50' | 'p95' | 'p99' | 'max') => freshness.tally[percentile] - freshness.kafkaDelivery[percentile];
  return { p50: added('p50'), p95: added('p95'), p99: added('p99'), max: added('max') };
}

/** CPU ms, or 'unknown' where /proc could not tell. */
function cpuMs(value: number | undefined, fractionDigits = 0): string {
  return value === undefined ? 'unknown' : value.toFixed(fractionDigits);
}

/** A consumer's CPU per 1,000 messages and PostgreSQL's over the same time. */
function cpuPair(rate: { readonly cpuMsPerThousand?: number; readonly postgresCpuMsPerThousand?: number }): string {
  return `${cpuMs(rate.cpuMsPerThousand)} + ${cpuMs(rate.postgresCpuMsPerThousand)}`;
}

/** The figures derived from the table's, in words, to print under it. */
export function derivedFigures(results: BenchResults): string[] {
  const lines: string[] = [];
  if (results.freshness !== undefined) {
    const added = freshnessAddedMs(results.freshness);
    const ms = (value: number) => `${value >= 0 ? '+' : ''}${Math.round(value)} ms`;
    lines.push(`freshness: Tally adds ${ms(added.p50)} at p50, ${ms(added.p95)} at p95, ${ms(added.p99)} at p99 over the Kafka delivery floor`);
  }
  if (results.statements !== undefined) {
    lines.push(
      `statements: the first of the month from 09:00 after ${formatHistory(results.statements.historyEntries)} entries, on a new API process, took ${Math.round(results.statements.firstMs)} ms ` +
        `(the load asks it again ${results.statements.connections} at a time)`,
    );
  }
  if (results.metering !== undefined) {
    const { tally, kafkajsDurable, kafkajsDecode, ledgerStorage: storage, balancesPerCustomer } = results.metering;
    const perEvent = (bytes: number) => Math.round(bytes / storage.events.rows);
    lines.push(
      `metering: ${balancesPerCustomer} balance(s) per customer, ${Math.round(tally.ledgerEventsPerSecond)} ledger events/s ` +
        `(${tally.creditConsumedEvents} CreditConsumed, ${tally.lowBalanceWarnedEvents} LowBalanceWarned); ` +
        `${Math.round(storage.bytesPerEvent)} bytes per ledger event over the ${storage.events.rows} in the ledger, heap + TOAST + indexes ` +
        `(event_log: heap ${perEvent(storage.events.heapBytes)}, indexes ${perEvent(storage.events.indexBytes)}; ` +
        `append_markers, ${storage.markers.rows} rows: heap ${perEvent(storage.markers.heapBytes)}, indexes ${perEvent(storage.markers.indexBytes)}, ` +
        `${Math.round(storage.markerBytesPerEvent)} in all)`,
      `metering: CPU ms per 1,000 usage events (the consumer + PostgreSQL): Tally ${cpuPair(tally)}, ` +
        `kafkajs durable ${cpuPair(kafkajsDurable)}, kafkajs decode-only ${cpuPair(kafkajsDecode)}`,
    );
  }
  if (results.growth !== undefined) {
    const { small, large } = results.growth;
    lines.push(
      `growth: CPU ms per 1,000 usage events (the consumer + PostgreSQL): ${cpuPair(large.tally)} at ${formatHistory(large.customers)} customers, ` +
        `${cpuPair(small.tally)} at ${formatHistory(small.customers)}`,
    );
  }
  if (results.replay !== undefined) {
    const { replay } = results.replay;
    // A tenth of a ms: a replayed event costs some 10 µs in all, and a change of a few percent must show.
    lines.push(
      `replay: CPU ms per 1,000 events (the bench process, which replays + PostgreSQL + Redis): ` +
        `${cpuMs(replay.cpuMsPerThousand, 1)} + ${cpuMs(replay.postgresCpuMsPerThousand, 1)} + ${cpuMs(replay.redisCpuMsPerThousand, 1)}`,
    );
  }
  if (results.append !== undefined) {
    const { storage } = results.append;
    lines.push(
      `storage: ${Math.round(storage.bytesPerRow)} bytes per event of the append phase's ledger over ${storage.rows} events, no markers ` +
        `(heap ${Math.round(storage.heapBytes / storage.rows)}, indexes ${Math.round(storage.indexBytes / storage.rows)} per event)`,
    );
  }
  return lines;
}

/** What makes a figure of this run suspect, in words, to print under the table. */
export function disturbances(results: BenchResults): string[] {
  const notes: string[] = [];
  const { metering, freshness, lookups, entitlements, usage, statements, writes } = results;
  if (writes !== undefined) {
    const { busy, first, quiet } = writes;
    const answered = busy.outcomes['201'] ?? 0;
    notes.push(
      `writes: ${answered} of ${busy.attempted} top-ups on the busy balance answered 201 (${JSON.stringify(busy.outcomes)}; timeout ${writes.timeoutSeconds} s), ` +
        `while the consumer metered ${Math.round(writes.meteredPerSecond)} events/s onto it (${Math.round(writes.meteredBeforePerSecond)}/s before the first top-up; ` +
        `${writes.consumerConflicts ?? 'unknown'} of its appends lost to a top-up); the first, on a balance the API had never read: ` +
        `${first.outcome}${first.ms === null ? '' : ` in ${Math.round(first.ms)} ms`}; quiet: ${JSON.stringify(quiet.outcomes)}; ` +
        `API process peak RSS ${Math.round(writes.apiPeakRssBytes / MIB)} MiB`,
    );
  }
  if (metering?.consumerPerformance.failure !== undefined) {
    notes.push(`Kafka ConsumerPerformance: ${metering.consumerPerformance.failure}; no ceiling from it`);
  }
  for (const [name, rate] of [
    ['Tally consumer', metering?.tally],
    ['kafkajs decode-only consumer', metering?.kafkajsDecode],
    ['kafkajs durable consumer', metering?.kafkajsDurable],
  ] as const) {
    if (rate !== undefined && rate.failedPolls > 0) {
      notes.push(`${name}: ${rate.failedPolls} offset polls failed (broker unreachable?); its time includes that outage`);
    }
  }
  // One CreditConsumed per usage event and balance, as the metering check below: each size meters
  // the same balances per customer (before the night of 2026-12-07 this compared with the usage events alone,
  // so a right two-balance run printed a note and one that lost half printed none).
  const growthBalances = results.growth?.balancesPerCustomer ?? 1;
  for (const { customers, tally } of results.growth === undefined ? [] : [results.growth.small, results.growth.large]) {
    if (tally.creditConsumedEvents !== tally.messages * growthBalances) {
      notes.push(
        `growth at ${customers} customers: ${tally.creditConsumedEvents} CreditConsumed in the ledger for ${tally.messages} usage events on ${growthBalances} balance(s) per customer`,
      );
    }
  }
  if (metering !== undefined && metering.tally.creditConsumedEvents !== metering.events * metering.balancesPerCustomer) {
    notes.push(
      `metering: ${metering.tally.creditConsumedEvents} CreditConsumed in the ledger for ${metering.events} usage events on ${metering.balancesPerCustomer} balance(s) per customer`,
    );
  }
  if (freshness !== undefined && freshness.unobserved > 0) {
    notes.push(`freshness: ${freshness.unobserved} tracked events never showed in Redis within the grace period (not in the percentiles)`);
  }
  for (const [name, read] of [
    ['lookups', lookups],
    ['entitlements', entitlements],
    ['usage lookups, no dead letters', usage === undefined ? undefined : { api: usage.emptyLog }],
    ['usage lookups, dead letters', usage === undefined ? undefined : { api: usage.fullLog }],
    ['statements, the month alone', statements === undefined ? undefined : { api: statements.shortLedger }],
    ['statements, from 09:00 after the history', statements === undefined ? undefined : { api: statements.fromNine }],
    ['statements, after the history', statements === undefined ? undefined : { api: statements.longLedger }],
    ['statements, the month before', statements === undefined ? undefined : { api: statements.monthBefore }],
    ['statements, the year', statements === undefined ? undefined : { api: statements.year }],
  ] as const) {
    if (read !== undefined && read.api.non2xx + read.api.errors > 0) {
      notes.push(`${name}: ${read.api.non2xx} non-2xx responses and ${read.api.errors} connection errors (not counted as served)`);
    }
  }
  return notes;
}

function formatHistory(events: number): string {
  return events.toLocaleString('en-US');
}

function figure(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(value >= 10 ? 1 : 2);
}

/** A Markdown table, so a run's output can go into docs/benchmarks.md as it is. */
export function formatResultTable(rows: readonly ResultRow[]): string {
  const lines = [
    '| measurement | unit | Tally | ceiling (same run) | ceiling | ratio |',
    '| --- | --- | ---: | --- | ---: | ---: |',
    ...rows.map((row) => `| ${row.measurement} | ${row.unit} | ${figure(row.tally)} | ${row.ceilingName} | ${figure(row.ceiling)} | ${Number.isFinite(row.ratio) ? row.ratio.toFixed(3) : 'n/a'} |`),
  ];
  return lines.join('\n');
}
