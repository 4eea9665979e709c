import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { balanceStreamId } from '@tally/domain';
import { freePort, waitFor } from '@tally/test-support';
import { Partitioners, type Message } from 'kafkajs';
import { BENCH_PRODUCT, balanceIdOf, customerIdOf, openBalances } from './benchBalances';
import type { BenchRun } from './benchRun';
import { unopenedBalance } from './ledgerWorkload';
import { copyUsageHistory } from './usageHistory';
import { summariseLatencies, type LatencySummary } from './percentiles';
import { findLogLine } from './findLogLine';
import { BENCH_RESULTS_DIR } from './meteringThroughput';
import { formatCount, progress } from './progress';
import { benchUsageRecord, createTopic, registerUsageSchema, usageMessage } from './usageTopic';

export interface TopUpSeries {
  readonly attempted: number;
  /** Latencies of the top-ups answered 201, in ms. */
  readonly answered: LatencySummary | null;
  /** How the top-ups ended: an HTTP status, or `timeout` (no answer within the timeout). */
  readonly outcomes: Readonly<Record<string, number>>;
}

export interface BusyWritesResult {
  readonly history: number;
  readonly timeoutSeconds: number;
  /** The ceiling: the same top-ups on a balance of two events that nothing else writes to. */
  readonly quiet: TopUpSeries;
  /** The first top-up on the busy balance, by an API process that has never read it (no snapshot yet). */
  readonly first: { readonly ms: number | null; readonly outcome: string };
  readonly busy: TopUpSeries;
  /** Seconds the consumer took from its start to meter the busy balance (it folds the history once). */
  readonly consumerWarmUpSeconds: number;
  /** Usage events the consumer metered onto the busy balance per second in the window before the first top-up. */
  readonly meteredBeforePerSecond: number;
  /** Usage events the consumer metered onto the busy balance per second while the busy top-ups ran. */
  readonly meteredPerSecond: number;
  /** Appends of the consumer that lost to another writer (a top-up), from its own counters. */
  readonly consumerConflicts: number | null;
  /** Peak resident memory (VmHWM) of the API process. */
  readonly apiPeakRssBytes: number;
}

const BACKLOG = 20_000;
const PUBLISH_BATCH = 5000;
/** The old path answers nothing within the timeout on the busy balance; after this many in a row the series stops. */
const MAX_TIMEOUTS_IN_A_ROW = 2;
/** Untimed top-ups on the quiet balance first: connections, JIT and caches warm, as for the busy ones. */
const WARM_UP_TOP_UPS = 10;
/** How long the consumer's own rate on the busy balance is watched before the first top-up. */
const RATE_WINDOW_MS = 15_000;

async function lastRevision(run: BenchRun, balanceId: string): Promise<bigint> {
  const { rows } = await run.pool.query<{ last_revision: string }>('SELECT last_revision FROM streams WHERE stream_id = $1', [balanceStreamId(balanceId)]);
  return BigInt(rows[0]!.last_revision);
}

/** Sequential manual top-ups through the API, each with its own Idempotency-Key, timed from request to answer. */
async function topUpSeries(origin: string, apiKey: string, balanceId: string, count: number, timeoutMs: number, label: string): Promise<TopUpSeries> {
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  let timeoutsInARow = 0;
  let attempted = 0;
  for (let i = 0; i < count && timeoutsInARow < MAX_TIMEOUTS_IN_A_ROW; i += 1) {
    const { ms, outcome } = await timedTopUp(origin, apiKey, balanceId, `${label}-${i}`, timeoutMs);
    attempted += 1;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    timeoutsInARow = outcome === 'timeout' || outcome.startsWith('failed') ? timeoutsInARow + 1 : 0;
    if (outcome === '201' && ms !== null) latencies.push(ms);
  }
  return { attempted, answered: latencies.length === 0 ? null : summariseLatencies(latencies), outcomes };
}

async function timedTopUp(origin: string, apiKey: string, balanceId: string, key: string, timeoutMs: number): Promise<{ ms: number | null; outcome: string }> {
  const started = performance.now();
  try {
    const response = await fetch(`${origin}/v1/credit-balances/${balanceId}/top-ups`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ credits: '1', reason: 'bench' }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer();
    return { ms: performance.now() - started, outcome: String(response.status) };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') return { ms: null, outcome: 'timeout' };
    // The server may give up first (its request or idle timeout closes the connection): that is an
    // outcome to report, like a timeout of ours, not a reason to lose the whole bench run.
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    return { ms: null, outcome: `failed: ${cause?.code ?? cause?.message ?? (error as Error).message}` };
  }
}

/**
 * Issue 10 §4: manual top-ups on a balance with `history` events (1,000,000 by default) while a
 * Tally consumer meters usage onto that very balance as fast as it can (a backlog is kept in
 * its partition throughout), against the same top-ups on a quiet balance of two events, through
 * one Tally API process. The first top-up on the busy balance is reported apart: the API
 * process has never read it, and no snapshot of it exists yet.
 */
export async function measureBusyBalanceWrites(run: BenchRun): Promise<BusyWritesResult> {
  const { customers, history, topUps, topUpTimeoutSeconds } = run.options;
  const timeoutMs = topUpTimeoutSeconds * 1000;
  const at = new Date().toISOString();
  // The customer after the bench's own: the usage of the writes measurement goes to it alone.
  const busy = unopenedBalance({ balanceId: balanceIdOf(customers), customerId: customerIdOf(customers), productId: BENCH_PRODUCT.id });
  await run.pool.query('INSERT INTO credit_balances (id, customer_id, product_id) VALUES ($1, $2, $3)', [
    busy.context.balanceId,
    busy.context.customerId,
    busy.context.productId,
  ]);
  await openBalances(run.eventStore, [busy], at);
  progress(`writes: copying ${formatCount(history)} events of history into ${busy.context.balanceId}`);
  await copyUsageHistory(run.pool, [busy], history, `${run.id}-history`, at);

  const port = await freePort();
  const apiKey = randomBytes(24).toString('hex');
  const api = await run.startTally('api', { TALLY_API_HOST: '127.0.0.1', TALLY_API_PORT: String(port), TALLY_API_KEYS: apiKey });
  const origin = `http://127.0.0.1:${port}`;
  progress(`writes: ceiling, ${topUps} top-ups on a quiet balance (after ${WARM_UP_TOP_UPS} untimed)`);
  await topUpSeries(origin, apiKey, balanceIdOf(0), WARM_UP_TOP_UPS, timeoutMs, `${run.id}-warm`);
  const quiet = await topUpSeries(origin, apiKey, balanceIdOf(0), topUps, timeoutMs, `${run.id}-quiet`);

  const topic = await run.createTopic('busy', (name) => createTopic(run.admin, name));
  const dlq = await run.createTopic('busy_dlq', (name) => createTopic(run.admin, name, 1));
  const schemaId = await registerUsageSchema(run.registry, topic);
  const producer = run.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const startRevision = await lastRevision(run, busy.context.balanceId);
  // Every usage event is one CreditConsumed on the busy balance (BENCH_PRODUCT), so the
  // stream's growth is the consumer's progress; the top-ups add a handful.
  const metered = async () => Number((await lastRevision(run, busy.context.balanceId)) - startRevision);
  let published = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      if (published - (await metered()) >= BACKLOG) {
        await delay(50);
        continue;
      }
      const messages: Message[] = [];
      for (let i = 0; i < PUBLISH_BATCH; i += 1) {
        const sequence = published + i;
        messages.push(await usageMessage(run.registry, schemaId, benchUsageRecord(`${run.id}-busy-${sequence}`, customers, sequence, Date.now())));
      }
      await producer.send({ topic, acks: -1, messages });
      published += PUBLISH_BATCH;
    }
  })();

  try {
    const consumerStarted = performance.now();
    const consumer = await run.startTally('consumer', { TALLY_USAGE_TOPIC: topic, TALLY_DLQ_TOPIC: dlq, TALLY_CONSUMER_GROUP: run.group('busy') });
    progress('writes: waiting for the consumer to meter the busy balance (it folds the history once)');
    await waitFor(async () => (await metered()) >= 2 * PUBLISH_BATCH, {
      description: 'the consumer to meter the busy balance',
      timeoutMs: 20 * 60_000,
      intervalMs: 200,
    });
    const consumerWarmUpSeconds = (performance.now() - consumerStarted) / 1000;
    progress(`writes: the consumer meters the busy balance after ${consumerWarmUpSeconds.toFixed(1)} s; its rate over ${RATE_WINDOW_MS / 1000} s, then the first top-up`);
    const windowStart = await metered();
    await delay(RATE_WINDOW_MS);
    const meteredBeforePerSecond = ((await metered()) - windowStart) / (RATE_WINDOW_MS / 1000);

    const first = await timedTopUp(origin, apiKey, busy.context.balanceId, `${run.id}-first`, timeoutMs);
    progress(`writes: first top-up ${first.outcome}${first.ms === null ? '' : ` after ${Math.round(first.ms)} ms`}; ${topUps} more`);
    const meteredBefore = await metered();
    const seriesStarted = performance.now();
    const busySeries = await topUpSeries(origin, apiKey, busy.context.balanceId, topUps, timeoutMs, `${run.id}-busy`);
    const meteredPerSecond = ((await metered()) - meteredBefore) / ((performance.now() - seriesStarted) / 1000);
    const apiPeakRssBytes = api.peakRssBytes() ?? Number.NaN;
    progress(
      `writes: busy top-ups ${JSON.stringify(busySeries.outcomes)}, p50 ${busySeries.answered?.p50.toFixed(0) ?? 'n/a'} ms, p99 ${busySeries.answered?.p99.toFixed(0) ?? 'n/a'} ms; consumer ${formatCount(meteredPerSecond)} events/s meanwhile`,
    );
    await consumer.kill('SIGTERM');
    const counters = findLogLine(consumer.lines, 'usage consumer stopped')?.counters as { conflicts?: number } | undefined;
    // The processes' own lines, for a look at what they did (conflicts, retries, counters).
    mkdirSync(BENCH_RESULTS_DIR, { recursive: true });
    writeFileSync(path.join(BENCH_RESULTS_DIR, `${run.id}-writes-consumer.log`), `${consumer.lines.join('\n')}\n`);
    writeFileSync(path.join(BENCH_RESULTS_DIR, `${run.id}-writes-api.log`), `${api.lines.join('\n')}\n`);
    return {
      history,
      timeoutSeconds: topUpTimeoutSeconds,
      quiet,
      first,
      busy: busySeries,
      consumerWarmUpSeconds,
      meteredBeforePerSecond,
      meteredPerSecond,
      consumerConflicts: counters?.conflicts ?? null,
      apiPeakRssBytes,
    };
  } finally {
    publishing = false;
    await publisher.catch(() => undefined);
    await producer.disconnect();
    await api.kill('SIGTERM');
  }
}
