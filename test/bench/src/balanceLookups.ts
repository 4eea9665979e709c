import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { lookupPath, type LookupLoad, type LookupLoadResult } from './autocannonLoad';
import { freePort, stackConfig } from '@tally/test-support';
import type { BareLookupServerOptions } from './bareLookupServer';
import { startBenchChild } from './benchChildProcess';
import type { BenchRun } from './benchRun';
import { cpuProfiling, type CollectedProfile } from './cpuProfiles';
import { BENCH_RESULTS_DIR } from './meteringThroughput';
import { ensureProjected } from './ensureProjected';
import { formatCount, progress } from './progress';
import { runRedisBenchmark, type RedisBenchmarkResult } from './redisBenchmark';
import { BALANCE_ID_PREFIX, customerIdOf } from './benchBalances';
import { createDeadLetterLog, DEFAULT_DEAD_LETTER_LOG_SIZE, type DeadLetterRecord } from '@tally/metering';
import { activeGeneration, balanceSnapshotKey } from './snapshotKeys';

export interface LookupsResult {
  readonly connections: number;
  readonly durationSeconds: number;
  readonly api: LookupLoadResult;
  /** The same GET, same load, on a bare Fastify + ioredis route (bareLookupServer.ts): the ceiling for a Node HTTP service. */
  readonly bareRoute: LookupLoadResult;
  /** HGETALL of the same snapshot hashes, random keys, as many clients: the ceiling. */
  readonly redis: RedisBenchmarkResult & { readonly requests: number };
  /** Peak resident memory (VmHWM) of the API process. */
  readonly peakRssBytes: number;
  /** With --profile: where the API process spent its time under the load. */
  readonly profile?: CollectedProfile;
}

/** GET /v1/customers/{id}/entitlements/{product}: the hottest route a product backend calls, against the same ceiling. */
export interface EntitlementsResult {
  readonly connections: number;
  readonly durationSeconds: number;
  readonly api: LookupLoadResult;
  /** HGETALL of the snapshot hashes at the same concurrency, as for lookups (the issue's goal: ≥ 0.3× of it). */
  readonly redis: RedisBenchmarkResult & { readonly requests: number };
  readonly peakRssBytes: number;
  /** With --profile: where the API process spent its time under the load. */
  readonly profile?: CollectedProfile;
}

/** GET /v1/customers/{id}/usage-events/{eventId}, with the dead-letter log empty and then full. */
export interface UsageLookupsResult {
  readonly connections: number;
  readonly durationSeconds: number;
  /** Letters in the dead-letter log for the second load, none of them of a looked-up event. */
  readonly deadLetters: number;
  readonly emptyLog: LookupLoadResult;
  readonly fullLog: LookupLoadResult;
  /** The higher peak resident memory (VmHWM) of the two API processes. */
  readonly peakRssBytes: number;
  /** With --profile: where the API process spent its time under the second load. */
  readonly profile?: CollectedProfile;
}

const CONNECTIONS = 50;
const REDIS_REQUESTS = 200_000;

/** Starts bareLookupServer.js and resolves once it prints `listening`; the returned function stops it. */
async function startBareLookupServer(options: BareLookupServerOptions): Promise<() => Promise<void>> {
  const server = await startBenchChild('bareLookupServer.js', options, { ready: 'listening' });
  return () => server.stop();
}

async function runAutocannon(load: LookupLoad): Promise<LookupLoadResult> {
  const child = spawn(process.execPath, [path.join(__dirname, 'autocannonLoad.js'), JSON.stringify(load)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the autocannon process exited with ${code}: ${stderr.slice(-2000)}`);
  return JSON.parse(stdout) as LookupLoadResult;
}

/** Which route loadApiRoute loads, and at how many connections (default CONNECTIONS). */
export type ApiRouteLoad = Pick<LookupLoad, 'usageIdPrefix' | 'statementPath'> & { readonly route: NonNullable<LookupLoad['route']>; readonly connections?: number };

/**
 * Loads one read route of a Tally API process with autocannon (from a second process); the API
 * is stopped after. `firstMs`: the probe's time, the first request of a new process.
 */
export async function loadApiRoute(
  run: BenchRun,
  { route, usageIdPrefix, statementPath, connections = CONNECTIONS }: ApiRouteLoad,
  profileName?: string,
): Promise<{ load: LookupLoadResult; peakRssBytes: number; profile?: CollectedProfile; apiKey: string; firstMs: number }> {
  const { customers, lookupSeconds } = run.options;
  await ensureProjected(run);
  const port = await freePort();
  const apiKey = randomBytes(24).toString('hex');
  const profiling = run.options.profile && profileName !== undefined ? cpuProfiling(BENCH_RESULTS_DIR, run.id, profileName) : undefined;
  const api = await run.startTally(
    'api',
    {
      TALLY_API_HOST: '127.0.0.1',
      TALLY_API_PORT: String(port),
      TALLY_API_KEYS: apiKey,
      // The per-key limit stays on, so its Redis round trip is in the figures, but above the load;
      // TALLY_API_RATE_LIMIT_PER_KEY=0 in the bench's environment measures without it.
      TALLY_API_RATE_LIMIT_PER_KEY: process.env.TALLY_API_RATE_LIMIT_PER_KEY ?? '100000000',
    },
    profiling?.nodeArgs ?? [],
  );
  const origin = `http://127.0.0.1:${port}`;
  // A wrong key, path or empty projection would otherwise be measured as a fast stream of errors.
  const path0 = lookupPath({ route, usageIdPrefix, statementPath }, 0);
  const probeStarted = performance.now();
  const probe = await fetch(`${origin}${path0}`, { headers: { authorization: `Bearer ${apiKey}` } });
  if (probe.status !== 200) throw new Error(`GET ${path0} answered ${probe.status}: ${await probe.text()}`);
  await probe.arrayBuffer();
  const firstMs = performance.now() - probeStarted;

  progress(`${route === 'usage' ? 'usage lookups' : `${route}s`}: autocannon, ${connections} connections for ${lookupSeconds} s against the Tally API${profiling !== undefined ? ` under --cpu-prof (into ${profiling.dir})` : ''}`);
  const load = await runAutocannon({
    origin,
    apiKey,
    balances: customers,
    connections,
    durationSeconds: lookupSeconds,
    route,
    ...(usageIdPrefix !== undefined ? { usageIdPrefix } : {}),
    ...(statementPath !== undefined ? { statementPath } : {}),
  });
  const peakRssBytes = api.peakRssBytes() ?? Number.NaN;
  // SIGTERM: the API closes and the process exits 0, which writes the profile.
  await api.kill('SIGTERM');
  const profile = profiling?.collect();
  progress(`API: ${formatCount(load.perSecond)} requests/s, p99 ${load.p99Ms} ms (${load.non2xx} non-2xx, ${load.errors} errors)`);
  return { load, peakRssBytes, apiKey, firstMs, ...(profile !== undefined ? { profile } : {}) };
}

/** redis-benchmark HGETALL of random snapshot hashes of the run, at the API loads' concurrency: the ceiling of both reads. */
async function snapshotReadCeiling(run: BenchRun, generation: string): Promise<RedisBenchmarkResult & { readonly requests: number }> {
  const key = balanceSnapshotKey(run.keyPrefix, generation, `${BALANCE_ID_PREFIX}__rand_int__`);
  progress(`ceiling: redis-benchmark HGETALL ${key}`);
  const redis = await runRedisBenchmark(['HGETALL', key], { keyspace: run.options.customers, requests: REDIS_REQUESTS, clients: CONNECTIONS });
  progress(`redis-benchmark: ${formatCount(redis.perSecond)} HGETALL/s, p99 ${redis.p99Ms} ms`);
  return { ...redis, requests: REDIS_REQUESTS };
}

/**
 * GET /v1/credit-balances/{id} on a Tally API process, loaded by autocannon from a second
 * process, against redis-benchmark reading the same snapshot hashes straight from Redis.
 */
export async function measureBalanceLookups(run: BenchRun): Promise<LookupsResult> {
  const { customers, lookupSeconds } = run.options;
  const { load, peakRssBytes, profile, apiKey } = await loadApiRoute(run, { route: 'balance' }, 'api');

  const generation = await activeGeneration(run.redis, run.keyPrefix);
  const barePort = await freePort();
  const stopBare = await startBareLookupServer({ redisUrl: stackConfig.redisUrl, snapshotKeyPrefix: balanceSnapshotKey(run.keyPrefix, generation, ''), port: barePort });
  progress(`lookups ceiling: the same load on a bare Fastify + ioredis route`);
  let bareRoute: LookupLoadResult;
  try {
    bareRoute = await runAutocannon({ origin: `http://127.0.0.1:${barePort}`, apiKey, balances: customers, connections: CONNECTIONS, durationSeconds: lookupSeconds });
  } finally {
    await stopBare();
  }
  if (bareRoute.non2xx + bareRoute.errors > 0) throw new Error(`the bare lookup route answered ${bareRoute.non2xx} non-2xx and ${bareRoute.errors} errors`);
  progress(`bare route: ${formatCount(bareRoute.perSecond)} requests/s, p99 ${bareRoute.p99Ms} ms`);

  const redis = await snapshotReadCeiling(run, generation);
  return { connections: CONNECTIONS, durationSeconds: lookupSeconds, api: load, bareRoute, redis, peakRssBytes, ...(profile !== undefined ? { profile } : {}) };
}

/**
 * GET /v1/customers/{id}/entitlements/{product}?credits=1 (issue 15): one Redis script per request
 * (the customer's balance of the product, the checkpoint, the freshness), against the same
 * redis-benchmark HGETALL ceiling as the balance lookups, at the same concurrency.
 */
export async function measureEntitlements(run: BenchRun): Promise<EntitlementsResult> {
  const { load, peakRssBytes, profile } = await loadApiRoute(run, { route: 'entitlement' }, 'api-entitlements');
  const redis = await snapshotReadCeiling(run, await activeGeneration(run.redis, run.keyPrefix));
  return { connections: CONNECTIONS, durationSeconds: run.options.lookupSeconds, api: load, redis, peakRssBytes, ...(profile !== undefined ? { profile } : {}) };
}

/** A dead letter as a broken producer leaves them, of a customer of the run and an event nobody looks up. */
function benchDeadLetter(index: number, customers: number): DeadLetterRecord {
  const customerId = customerIdOf(index % customers);
  const usageEventId = `dead-${index}`;
  return {
    partition: index % 3,
    offset: String(index),
    deadLetteredAt: new Date(Date.UTC(2026, 0, 1) + index).toISOString(),
    errorCode: 'invalid_usage_event',
    reason: 'the usage event is invalid: /quantity must be a string of decimal digits with at most 6 decimals (received a number)',
    causeCode: null,
    sourceTopic: 'usage-events',
    sourcePartition: index % 6,
    sourceOffset: String(100_000 + index),
    key: customerId,
    valuePreview: JSON.stringify({ id: usageEventId, customerId, event: 'api_call', quantity: 1.5, timestamp: '2026-01-01T00:00:00Z', properties: { region: 'eu-west-1' } }),
    customerId,
    usageEventId,
  };
}

/**
 * GET /v1/customers/{id}/usage-events/{eventId} of a usage event the ledger holds, on a Tally API
 * process, first with the dead-letter log empty (the ceiling), then with it full of letters of
 * other events: what a broken producer elsewhere costs the lookups. A new API process each, so
 * neither load warms the other's caches.
 */
export async function measureUsageLookups(run: BenchRun, usageIdPrefix: string): Promise<UsageLookupsResult> {
  const empty = await loadApiRoute(run, { route: 'usage', usageIdPrefix });
  // As full as a log gets by default: what it holds once a broken producer has run for a while.
  const log = createDeadLetterLog({ redis: run.redis, keyPrefix: run.keyPrefix });
  progress(`usage lookups: ${DEFAULT_DEAD_LETTER_LOG_SIZE} letters into the dead-letter log (untimed)`);
  await log.record(Array.from({ length: DEFAULT_DEAD_LETTER_LOG_SIZE }, (_, index) => benchDeadLetter(index, run.options.customers)));
  const full = await loadApiRoute(run, { route: 'usage', usageIdPrefix }, 'api-usage');
  return {
    connections: CONNECTIONS,
    durationSeconds: run.options.lookupSeconds,
    deadLetters: DEFAULT_DEAD_LETTER_LOG_SIZE,
    emptyLog: empty.load,
    fullLog: full.load,
    peakRssBytes: Math.max(empty.peakRssBytes, full.peakRssBytes),
    ...(full.profile !== undefined ? { profile: full.profile } : {}),
  };
}
