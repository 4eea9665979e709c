import { CONSUMER_MAX_OLD_SPACE_MIB, CONSUMER_MAX_SEMI_SPACE_MIB } from '@tally/metering';

/** The measurements `npm run bench` can make; `--only` picks some of them. */
export const PHASES = ['metering', 'append', 'freshness', 'lookups', 'entitlements', 'usage', 'statements', 'replay', 'writes'] as const;
export type Phase = (typeof PHASES)[number];

export interface BenchOptions {
  /** Usage events pre-loaded for the metering throughput. */
  readonly events: number;
  /** Customers (each with one balance) the events are spread across. */
  readonly customers: number;
  /** Usage events per second published during the freshness measurement. */
  readonly rate: number;
  /** How long the freshness measurement publishes, in seconds. */
  readonly durationSeconds: number;
  /** How long autocannon loads the API, in seconds. */
  readonly lookupSeconds: number;
  readonly only: ReadonlySet<Phase>;
  /** Leave the schemas, topics, groups and Redis keys in place for a look afterwards. */
  readonly keep: boolean;
  /** Run the metering consumer under --cpu-prof and summarise where its time went. */
  readonly profile: boolean;
  /** Events of history on the busy balance of the writes measurement. */
  readonly history: number;
  /** Manual top-ups timed on the busy balance (and on a quiet one, the ceiling). */
  readonly topUps: number;
  /** Longest a top-up may take before it counts as unanswered, in seconds. */
  readonly topUpTimeoutSeconds: number;
  /** The main job the Tally processes run: default this checkout's build; another checkout's for a before/after pair. */
  readonly tallyMain?: string;
  /** `--heap-snapshot`: the metering consumer writes a heap snapshot half-way through (SIGUSR2). */
  readonly heapSnapshot: boolean;
  /**
   * `--promoted-allocations`: the metering consumer and the growth run's consumers sample the
   * allocations that survive into V8's old generation, by allocating function (promotedSampler.ts).
   */
  readonly promotedAllocations: boolean;
  /**
   * `--consumer-max-old-space MiB`: V8's old-space limit for the metering consumer (node
   * --max-old-space-size); default @tally/metering's CONSUMER_MAX_OLD_SPACE_MIB, as it is deployed.
   */
  readonly consumerMaxOldSpaceMib?: number;
  /**
   * `--one-balance`: the metering workload of before (one balance per customer, no threshold)
   * instead of two balances per customer, the second crossing its low-balance threshold.
   */
  readonly oneBalance: boolean;
  /** `--consumer-max-semi-space MiB`: V8's young-generation semi-space limit for it (node --max-semi-space-size); default CONSUMER_MAX_SEMI_SPACE_MIB. */
  readonly consumerMaxSemiSpaceMib?: number;
  /** `--consumer-default-heap`: neither limit, Node's own defaults (the consumer as it ran before they were set). */
  readonly consumerDefaultHeap: boolean;
  /**
   * `--freshness-stages`: the freshness measurement's Tally process logs at debug level, and the
   * bench splits each tracked event's latency into stages by those lines' times (freshnessStages.ts).
   */
  readonly freshnessStages: boolean;
  /**
   * `--pg-statements`: the metering consumer's and the growth run's timed parts each report the
   * statements PostgreSQL ran for them, from pg_stat_statements (pgStatements.ts).
   */
  readonly pgStatements: boolean;
  /**
   * `--growth`: Tally's metering rate at `large` customers against `small` (not in the default
   * run); `history`: events of history copied over the `large` balances before both are metered.
   */
  readonly growth?: { readonly small: number; readonly large: number; readonly history: number; readonly withoutStates?: boolean };
}

export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

export const USAGE = `usage: npm run bench [-- options]
  --events N        usage events pre-loaded for the metering throughput (default 1000000)
  --customers N     customers (default 10000): one balance each, and a second, of another product,
                    in the metering measurement
  --one-balance     meter the old workload: one balance per customer, no low-balance threshold
  --rate R          usage events/s published for the freshness measurement (default 2000)
  --duration S      seconds of publishing for the freshness measurement (default 60)
  --lookup-seconds S  seconds of HTTP load on the balance lookups, the entitlement checks and each usage lookups load (default 15)
  --only a,b        only these measurements: ${PHASES.join(', ')} (default: all)
  --keep            keep the run's schemas, topics, consumer groups and Redis keys
  --profile         run the metering consumer, the freshness consumer+projector and the API with --cpu-prof and
                    summarise their hot functions;
                    profile the replay (in the bench process) while it runs
  --heap-snapshot   the metering consumer writes a V8 heap snapshot half-way through its run (into
                    bench-results/profiles/<run id>/consumer-heap/; summarise it with
                    node test/bench/dist/heapSnapshotSummaryCli.js <file>)
  --promoted-allocations  the metering consumer and the growth run's consumers sample what they allocate
                    that is promoted to V8's old generation (live or freed by a full collection), by
                    allocating function; summarised in the output (and with
                    node test/bench/dist/heapProfileSummaryCli.js <file>)
  --consumer-max-old-space MiB  run the metering consumer with node --max-old-space-size=MiB
                    (default ${CONSUMER_MAX_OLD_SPACE_MIB}, as README's "Memory of a consumer process" says to run it)
  --consumer-max-semi-space MiB  run the metering consumer with node --max-semi-space-size=MiB (default ${CONSUMER_MAX_SEMI_SPACE_MIB})
  --consumer-default-heap  run the metering consumer with Node's default heap limits instead
  --history N       events of history on the busy balance of the writes measurement (default 1000000)
  --top-ups N       manual top-ups timed in the writes measurement (default 100)
  --top-up-timeout S  seconds a top-up may take before it counts as unanswered (default 120)
  --growth          also meter --events at 1,000 and at 100,000 customers (Tally only; not in the default run)
  --growth-customers A,B  the growth run's two sizes instead (implies --growth)
  --growth-history N  first copy N usage events of history over the growth run's larger set of
                    balances, straight into the ledger (implies --growth; e.g. 10000000), then keep
                    every balance's stored state as \`tally keep-balance-states\` does (untimed)
  --growth-history-without-states  copy the history but keep no stored states (the store as a bulk
                    import leaves it before the operator runs keep-balance-states; for a before/after pair)
  --freshness-stages  split the freshness latency into stages (Kafka to the consumer, metering,
                    append, projector wake-up and read, Redis write, the bench's poll) from the
                    Tally process's debug log lines
  --pg-statements   report the statements PostgreSQL ran while the metering consumer and the growth
                    run's consumers ran, by time (needs pg_stat_statements in shared_preload_libraries;
                    see docs/benchmarks.md)
  --tally-main PATH   the main job to run (default this checkout's services/tally/dist/main.js),
                    e.g. another checkout's build for a before/after pair`;

function positiveInteger(flag: string, raw: string | undefined, max: number): number {
  const value = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new BenchUsageError(`${flag} takes a whole number from 1 to ${max}, got ${raw ?? 'nothing'}`);
  }
  return value;
}

/** `--growth-customers A,B`: two whole numbers, the first below the second. */
export function parseGrowthCustomers(raw: string | undefined): { small: number; large: number } {
  const parts = (raw ?? '').split(',').map((part) => part.trim());
  if (parts.length !== 2) throw new BenchUsageError(`--growth-customers takes two sizes, A,B; got ${raw ?? 'nothing'}`);
  const small = positiveInteger('--growth-customers', parts[0], 999_999_999_999);
  const large = positiveInteger('--growth-customers', parts[1], 999_999_999_999);
  if (small >= large) throw new BenchUsageError(`--growth-customers takes the smaller size first; got ${raw}`);
  return { small, large };
}

export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  let events = 1_000_000;
  let customers = 10_000;
  let rate = 2000;
  let durationSeconds = 60;
  let lookupSeconds = 15;
  let only: Set<Phase> = new Set(PHASES);
  let keep = false;
  let profile = false;
  let heapSnapshot = false;
  let promotedAllocations = false;
  let consumerMaxOldSpaceMib: number | undefined;
  let consumerMaxSemiSpaceMib: number | undefined;
  let oneBalance = false;
  let consumerDefaultHeap = false;
  let freshnessStages = false;
  let pgStatements = false;
  let history = 1_000_000;
  let topUps = 100;
  let topUpTimeoutSeconds = 120;
  let tallyMain: string | undefined;
  let growth: { small: number; large: number } | undefined;
  let growthHistory = 0;
  let withoutStates = false;
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index]!;
    const value = () => argv[++index];
    switch (flag) {
      case '--events':
        events = positiveInteger(flag, value(), 100_000_000);
        break;
      case '--customers':
        // 12 digits: balance ids end in the zero-padded index redis-benchmark's __rand_int__ produces.
        customers = positiveInteger(flag, value(), 999_999_999_999);
        break;
      case '--rate':
        rate = positiveInteger(flag, value(), 1_000_000);
        break;
      case '--duration':
        durationSeconds = positiveInteger(flag, value(), 3600);
        break;
      case '--lookup-seconds':
        lookupSeconds = positiveInteger(flag, value(), 3600);
        break;
      case '--only': {
        const names = (value() ?? '').split(',').map((name) => name.trim()).filter(Boolean);
        const unknown = names.filter((name) => !(PHASES as readonly string[]).includes(name));
        if (names.length === 0 || unknown.length > 0) {
          throw new BenchUsageError(`--only takes a comma-separated list of ${PHASES.join(', ')}; unknown: ${unknown.join(', ') || '(none given)'}`);
        }
        only = new Set(names as Phase[]);
        break;
      }
      case '--keep':
        keep = true;
        break;
      case '--profile':
        profile = true;
        break;
      case '--heap-snapshot':
        heapSnapshot = true;
        break;
      case '--promoted-allocations':
        promotedAllocations = true;
        break;
      case '--consumer-max-old-space':
        consumerMaxOldSpaceMib = positiveInteger(flag, value(), 1_000_000);
        break;
      case '--consumer-default-heap':
        consumerDefaultHeap = true;
        break;
      case '--freshness-stages':
        freshnessStages = true;
        break;
      case '--pg-statements':
        pgStatements = true;
        break;
      case '--one-balance':
        oneBalance = true;
        break;
      case '--consumer-max-semi-space':
        consumerMaxSemiSpaceMib = positiveInteger(flag, value(), 1024);
        break;
      case '--history':
        history = positiveInteger(flag, value(), 100_000_000);
        break;
      case '--top-ups':
        topUps = positiveInteger(flag, value(), 1_000_000);
        break;
      case '--top-up-timeout':
        topUpTimeoutSeconds = positiveInteger(flag, value(), 3600);
        break;
      case '--growth':
        growth ??= { small: 1000, large: 100_000 };
        break;
      case '--growth-customers':
        growth = parseGrowthCustomers(value());
        break;
      case '--growth-history':
        growthHistory = positiveInteger(flag, value(), 1_000_000_000);
        growth ??= { small: 1000, large: 100_000 };
        break;
      case '--growth-history-without-states':
        withoutStates = true;
        break;
      case '--tally-main': {
        tallyMain = value();
        if (tallyMain === undefined || tallyMain.length === 0) throw new BenchUsageError('--tally-main takes the path of a built main.js');
        break;
      }
      default:
        throw new BenchUsageError(`unknown argument ${flag}`);
    }
  }
  return { events, customers, rate, durationSeconds, lookupSeconds, only, keep, profile, heapSnapshot, promotedAllocations, oneBalance, consumerDefaultHeap, freshnessStages, pgStatements, ...(consumerMaxOldSpaceMib !== undefined ? { consumerMaxOldSpaceMib } : {}), ...(consumerMaxSemiSpaceMib !== undefined ? { consumerMaxSemiSpaceMib } : {}), history, topUps, topUpTimeoutSeconds, ...(tallyMain !== undefined ? { tallyMain } : {}), ...(growth !== undefined ? { growth: { ...growth, history: growthHistory, ...(withoutStates ? { withoutStates } : {}) } } : {}) };
}
