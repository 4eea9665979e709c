import { performance } from 'node:perf_hooks';
import { balanceStreamId } from '@tally/domain';
import { createPostgresBalancePages, createPostgresBalanceStateStore, keepBalanceStates } from '@tally/ledger';
import type { BenchRun } from './benchRun';
import { analyzeSchema } from './analyzeSchema';
import { benchBalances, openBalances, openedInMemory, registerBalanceRows } from './benchBalances';
import { cpuProfiling } from './cpuProfiles';
import { BENCH_RESULTS_DIR, consumerHeapArgs, meterWithTally, openSecondBalances, type TallyMeteringRate } from './meteringThroughput';
import { promotedAllocations, type CollectedHeapProfile } from './promotedAllocations';
import { openStatementWindow, type StatementFigures } from './pgStatements';
import { formatCount, progress } from './progress';
import { copyUsageHistory } from './usageHistory';
import { createTopic, preloadUsageEvents, registerUsageSchema } from './usageTopic';

export interface GrowthResult {
  readonly events: number;
  /** Usage events of history copied over the large set of balances before either was metered. */
  readonly history: number;
  /** Balances each customer holds at both sizes, each charged by every usage event: 2, or 1 with --one-balance. */
  readonly balancesPerCustomer: number;
  readonly small: GrowthSize;
  readonly large: GrowthSize;
}

export interface GrowthSize {
  readonly customers: number;
  readonly tally: TallyMeteringRate;
  /** `--promoted-allocations`: what this size's consumer promoted to the old generation. */
  readonly promoted?: CollectedHeapProfile;
  /** `--pg-statements`: the statements PostgreSQL ran while this size's consumer ran. */
  readonly statements?: StatementFigures[];
}

/**
 * The growth run (`--growth`): the same number of usage events metered by a fresh Tally consumer
 * over `small` customers, then over `large`, each from a topic of its own; the ratio is the share
 * of its small-scale rate Tally keeps at the larger scale (issue 11's goal: at least 0.8). The
 * balances beyond the run's `--customers` are registered and opened first (untimed), and every
 * customer's second balance unless --one-balance (the metering run's workload), then analysed.
 * History (--growth-history) goes onto each customer's first balance only.
 */
export async function measureGrowth(
  run: BenchRun,
  sizes: { readonly small: number; readonly large: number; readonly history: number; readonly withoutStates?: boolean },
): Promise<GrowthResult> {
  const { events, customers, oneBalance } = run.options;
  const at = new Date().toISOString();
  if (sizes.large > customers) {
    const more = benchBalances(sizes.large).slice(customers);
    progress(`growth: opening ${formatCount(more.length)} more balances (untimed)`);
    await registerBalanceRows(run.pool, more);
    await openBalances(run.eventStore, more, at);
  }
  if (!oneBalance) await openSecondBalances(run, sizes.large, at);
  await analyzeSchema(run.pool);
  if (sizes.history > 0) {
    // Decided from each balance's opened state: only right while nothing else wrote to them.
    // An opened bench balance is at revision 1 (its opening and starting top-up).
    const { rows } = await run.pool.query<{ moved: string }>('SELECT count(*) AS moved FROM streams WHERE stream_id = ANY ($1::text[]) AND last_revision > 1', [
      benchBalances(sizes.large).map((balance) => balanceStreamId(balance.context.balanceId)),
    ]);
    if (Number(rows[0]!.moved) > 0) throw new Error('--growth-history needs balances nothing has metered yet: run it with --only append (or alone)');
    progress(`growth: copying ${formatCount(sizes.history)} events of history over ${formatCount(sizes.large)} balances (untimed)`);
    await copyUsageHistory(run.pool, openedInMemory(benchBalances(sizes.large), at), sizes.history, `${run.id}-growth-history`, at);
    // A store whose history Tally's writers wrote has their stored states; one filled by a bulk
    // copy gets them from the operator's command (tally keep-balance-states), the same code run here.
    if (sizes.withoutStates !== true) {
      progress(`growth: keeping every balance's stored state, as tally keep-balance-states does (untimed)`);
      const started = performance.now();
      const kept = await keepBalanceStates({
        eventStore: run.eventStore,
        stateStore: createPostgresBalanceStateStore({ pool: run.pool }),
        pageBalanceIds: createPostgresBalancePages({ pool: run.pool }),
        logger: run.logger,
        onPage: ({ balances }) => {
          if (balances % 20_000 === 0) progress(`keep-balance-states: ${formatCount(balances)} balances checked`);
        },
      });
      progress(`growth: ${formatCount(kept.kept)} stored states kept over ${formatCount(kept.balances)} balances in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      await run.pool.query('ANALYZE balance_snapshots');
    }
  }
  const meterOver = async (over: number): Promise<GrowthSize> => {
    const topic = await run.createTopic(`growth${over}`, (name) => createTopic(run.admin, name));
    const dlq = await run.createTopic(`growth${over}_dlq`, (name) => createTopic(run.admin, name, 1));
    const schemaId = await registerUsageSchema(run.registry, topic);
    await preloadUsageEvents({ kafka: run.kafka, registry: run.registry, schemaId, topic, events, customers: over, idPrefix: `${run.id}-growth${over}` });
    progress(`growth: one Tally consumer metering ${formatCount(events)} events over ${formatCount(over)} customers`);
    // --profile: each size's consumer under --cpu-prof, summarised as the metering run's is.
    const profiling = run.options.profile ? cpuProfiling(BENCH_RESULTS_DIR, run.id, `consumer-growth${over}`) : undefined;
    const promoted = run.options.promotedAllocations ? promotedAllocations(BENCH_RESULTS_DIR, run.id, `consumer-growth${over}-promoted`) : undefined;
    const nodeArgs = [...(profiling?.nodeArgs ?? []), ...(promoted?.nodeArgs ?? []), ...consumerHeapArgs(run.options)];
    const window = run.options.pgStatements ? await openStatementWindow(run.pool, `the consumer at ${formatCount(over)} customers`) : undefined;
    const tally = await meterWithTally(run, { topic, dlq, events, groupSuffix: `growth${over}`, nodeArgs });
    const statements = await window?.close();
    const cpu = tally.cpuMsPerThousand === undefined ? '' : `, the consumer ${formatCount(tally.cpuMsPerThousand)} CPU ms per 1,000`;
    progress(`growth: ${formatCount(tally.perSecond)} events/s over ${formatCount(over)} customers${cpu}`);
    if (profiling !== undefined) progress(`growth: the consumer's profile at ${formatCount(over)} customers: ${profiling.collect().file}`);
    return { customers: over, tally, ...(promoted !== undefined ? { promoted: promoted.collect() } : {}), ...(statements !== undefined ? { statements } : {}) };
  };
  const small = await meterOver(sizes.small);
  const large = await meterOver(sizes.large);
  return { events, history: sizes.history, balancesPerCustomer: oneBalance ? 1 : 2, small, large };
}
