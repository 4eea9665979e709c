import { randomInt } from 'node:crypto';
import autocannon from 'autocannon';
import { balanceIdOf, BENCH_PRODUCT, customerIdOf } from './benchBalances';

/** What balanceLookups.ts passes in (as JSON, argv[2]) and reads back (as JSON, on stdout). */
export interface LookupLoad {
  readonly origin: string;
  readonly apiKey: string;
  readonly balances: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /**
   * Which read: a balance by id (default), the entitlement check of a random customer for 1
   * credit, the lookup of a usage event of a random customer, or one statement again and again.
   */
  readonly route?: 'balance' | 'entitlement' | 'usage' | 'statement';
  /** For `usage`: the run's usage event ids are `<usageIdPrefix>-<n>`, usage n of customer n mod balances. */
  readonly usageIdPrefix?: string;
  /** For `statement`: the one path every request asks, a balance's statement of one period. */
  readonly statementPath?: string;
}

/** The path of one request of the load, for a random balance (and its customer) of the run. */
export function lookupPath(load: Pick<LookupLoad, 'route' | 'usageIdPrefix' | 'statementPath'>, index: number): string {
  switch (load.route) {
    case 'statement':
      if (load.statementPath === undefined) throw new Error('a statement load needs its statementPath');
      return load.statementPath;
    case 'entitlement':
      return `/v1/customers/${customerIdOf(index)}/entitlements/${BENCH_PRODUCT.id}?credits=1`;
    case 'usage':
      return `/v1/customers/${customerIdOf(index)}/usage-events/${load.usageIdPrefix ?? ''}-${index}`;
    case 'balance':
    case undefined:
      return `/v1/credit-balances/${balanceIdOf(index)}`;
  }
}

export interface LookupLoadResult {
  /** 2xx responses per second over the whole run. */
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
}

/**
 * The load generator, run as its own process (node autocannonLoad.js '<json>') so that it does
 * not share an event loop, or a core's time slice, with the bench or the API it loads. Each
 * request asks for a random one of the run's balances.
 */
async function main(): Promise<void> {
  const load = JSON.parse(process.argv[2] ?? '') as LookupLoad;
  const result = await autocannon({
    url: load.origin,
    connections: load.connections,
    duration: load.durationSeconds,
    headers: { authorization: `Bearer ${load.apiKey}` },
    requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: lookupPath(load, randomInt(load.balances)) }) }],
  });
  const summary: LookupLoadResult = {
    perSecond: result['2xx'] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

// Run as a process of its own; imported (by balanceLookups.ts, for lookupPath) it does nothing.
if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`autocannon load failed: ${String(error)}\n`);
    process.exit(1);
  });
}
