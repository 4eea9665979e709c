import { performance } from 'node:perf_hooks';
import type { BenchRun } from './benchRun';
import { copyInto, EVENT_LOG_COLUMNS, storedRows } from './copyRows';
import { decideAppends, usageCommands } from './ledgerWorkload';
import { analyzeSchema } from './analyzeSchema';
import { formatCount, progress } from './progress';
import { tableStorage, type TableStorage } from './tableStorage';
import { benchBalances, openBalances } from './benchBalances';

export interface Rate {
  readonly events: number;
  readonly seconds: number;
  readonly perSecond: number;
}

export interface AppendCeilingResult {
  readonly batchSize: number;
  readonly streamsPerBatch: number;
  /** The event store's appendMany, one call (one transaction) per batch. */
  readonly appendMany: Rate;
  /** The same rows in one COPY into a table without keys or indexes: the ceiling. */
  readonly copyAll: Rate;
  /** The same rows, one COPY (one transaction, one commit) per batch. */
  readonly copyPerBatch: Rate;
  /** The same rows in one COPY into a copy of the events table with its keys, indexes and checks. */
  readonly copyIndexed: Rate;
  /**
   * The events table after the appends (the opening events included): heap and indexes per event.
   * Written without append markers: the storage goal's figure is the metering run's ledger.
   */
  readonly storage: TableStorage;
  /** The same appended rows in the bare table: the data alone, with no index and no opening events. */
  readonly bareStorage: TableStorage;
}

export const APPEND_BATCH = 500;

const rate = (events: number, seconds: number): Rate => ({ events, seconds, perSecond: events / seconds });

/**
 * The event store's batch append against PostgreSQL's own fastest way in, on the same rows. It
 * runs in a schema of its own, so the ledger the other measurements read stays as metering made it.
 */
export async function measureAppendCeiling(run: BenchRun): Promise<AppendCeilingResult> {
  const { pool, eventStore } = await run.createSchema('append');
  const balances = benchBalances(run.options.customers);
  const at = new Date().toISOString();
  await openBalances(eventStore, balances, at);
  await analyzeSchema(pool);
  const total = Math.max(APPEND_BATCH, Math.round(run.options.events / 10 / APPEND_BATCH) * APPEND_BATCH);
  progress(`append: ${formatCount(total)} CreditConsumed events with appendMany, ${APPEND_BATCH} per call across ${Math.min(APPEND_BATCH, balances.length)} streams`);

  const batches: { from: bigint; to: bigint }[] = [];
  let appendSeconds = 0;
  let head = await eventStore.headPosition();
  for (let from = 0; from < total; from += APPEND_BATCH) {
    // Deciding the events is the caller's work: only the store's append (its encoding
    // included) is timed. The COPY text below is made outside the COPY timings too.
    const requests = decideAppends(usageCommands(balances, from, APPEND_BATCH, `${run.id}-append`, at));
    const started = performance.now();
    const results = await eventStore.appendMany(requests);
    appendSeconds += (performance.now() - started) / 1000;
    const last = results.reduce((max, result) => (result.position > max ? result.position : max), head);
    batches.push({ from: head + 1n, to: last });
    head = last;
  }
  // The ceilings COPY the very rows the store wrote (event_log's compact encoding), one chunk per
  // append call.
  const chunks: Buffer[] = [];
  for (const batch of batches) chunks.push(await storedRows(pool, batch.from, batch.to));
  const appendMany = rate(total, appendSeconds);
  progress(`appendMany: ${formatCount(appendMany.perSecond)} events/s; now COPY of the same rows`);

  // LIKE copies the columns and NOT NULLs only: no key, no unique index, no check.
  await pool.query('CREATE TABLE copy_target (LIKE event_log)');
  let started = performance.now();
  await copyInto(pool, 'copy_target', chunks, EVENT_LOG_COLUMNS);
  const copyAll = rate(total, (performance.now() - started) / 1000);
  await pool.query('TRUNCATE copy_target');
  started = performance.now();
  for (const chunk of chunks) await copyInto(pool, 'copy_target', [chunk], EVENT_LOG_COLUMNS);
  const copyPerBatch = rate(total, (performance.now() - started) / 1000);
  const bareStorage = await tableStorage(pool, 'copy_target');

  // The unique indexes (ids, stream revisions) and checks are what make an append an append:
  // this is the ceiling for a store that keeps them, with no per-row logic of its own.
  await pool.query('CREATE TABLE copy_indexed (LIKE event_log INCLUDING CONSTRAINTS INCLUDING INDEXES)');
  started = performance.now();
  await copyInto(pool, 'copy_indexed', chunks, EVENT_LOG_COLUMNS);
  const copyIndexed = rate(total, (performance.now() - started) / 1000);
  progress(
    `COPY: ${formatCount(copyAll.perSecond)} rows/s in one, ${formatCount(copyPerBatch.perSecond)} rows/s one per batch, ` +
      `${formatCount(copyIndexed.perSecond)} rows/s in one into the indexed copy`,
  );
  const storage = await tableStorage(pool, 'event_log');
  progress(`storage: ${Math.round(storage.bytesPerRow)} bytes per event of this ledger (no markers) over ${formatCount(storage.rows)} events (heap ${storage.heapBytes}, indexes ${storage.indexBytes} bytes)`);
  const streamsPerBatch = Math.min(APPEND_BATCH, balances.length);
  return { batchSize: APPEND_BATCH, streamsPerBatch, appendMany, copyAll, copyPerBatch, copyIndexed, storage, bareStorage };
}
