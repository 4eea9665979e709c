import { freshnessAddedMs, MIB, type BenchResults } from './benchResults';

/** One of issue 11's goals, held against this run's figure. */
export interface GoalCheck {
  readonly goal: string;
  /** This run's figure, in the goal's own terms (a ratio, ms, MiB, bytes). */
  readonly figure: string;
  readonly met: boolean;
}


/*
 * The goals of issue 11 ("Done when"), the thresholds written once here so that a run says
 * itself which it reaches instead of a reader holding its table against the issue. A goal whose
 * phase did not run is left out, never reported as met.
 */
export const GOALS = {
  meteringToDecodeOnly: 0.3,
  meteringToDurable: 0.7,
  appendToBareCopy: 0.5,
  freshnessAddedP99Ms: 30,
  lookupsToRedisBenchmark: 0.3,
  lookupsP99Ms: 5,
  replayToSequentialRead: 0.5,
  consumerPeakRssMib: 256,
  growthRatio: 0.8,
  bytesPerLedgerEvent: 300,
} as const;

// Figures are rounded towards missing the goal (ratios down, sizes up), so a figure printed
// beside "no" never reads as the threshold itself.
function atLeast(goal: string, value: number, threshold: number): GoalCheck {
  return { goal, figure: Number.isFinite(value) ? (Math.floor(value * 1000) / 1000).toFixed(3) : 'n/a', met: value >= threshold };
}

function atMost(goal: string, value: number, threshold: number, unit: string): GoalCheck {
  return { goal, figure: Number.isFinite(value) ? `${Math.ceil(value).toLocaleString('en-US')} ${unit}` : 'n/a', met: value <= threshold };
}

export function goalChecks(results: BenchResults): GoalCheck[] {
  const checks: GoalCheck[] = [];
  const { metering, growth, append, freshness, lookups, replay, memory } = results;
  if (metering !== undefined) {
    const rate = metering.tally.perSecond;
    checks.push(atLeast(`metering ≥ ${GOALS.meteringToDecodeOnly} × kafkajs decode-only`, rate / metering.kafkajsDecode.perSecond, GOALS.meteringToDecodeOnly));
    checks.push(atLeast(`metering ≥ ${GOALS.meteringToDurable} × the durable ceiling`, rate / metering.kafkajsDurable.perSecond, GOALS.meteringToDurable));
  }
  if (growth !== undefined) {
    const history = growth.history > 0 ? `, ${growth.history.toLocaleString('en-US')} events of history` : '';
    checks.push(
      atLeast(
        `growth: metering at ${growth.large.customers.toLocaleString('en-US')} customers${history} ≥ ${GOALS.growthRatio} × at ${growth.small.customers.toLocaleString('en-US')}`,
        growth.large.tally.perSecond / growth.small.tally.perSecond,
        GOALS.growthRatio,
      ),
    );
  }
  if (append !== undefined) {
    checks.push(atLeast(`append ≥ ${GOALS.appendToBareCopy} × one COPY into a bare table`, append.appendMany.perSecond / append.copyAll.perSecond, GOALS.appendToBareCopy));
  }
  if (freshness !== undefined) {
    const added = freshnessAddedMs(freshness).p99;
    // A tracked event that never showed has no latency, so the percentiles leave it out: they
    // cannot say the goal was reached while one is missing (its latency is at least the grace period).
    const { unobserved } = freshness;
    const tracked = freshness.tally.samples + unobserved;
    const missing = unobserved > 0 ? `, ${unobserved.toLocaleString('en-US')} of ${tracked.toLocaleString('en-US')} tracked never showed` : '';
    checks.push({
      goal: `freshness: Tally adds ≤ ${GOALS.freshnessAddedP99Ms} ms to Kafka's delivery at p99`,
      figure: `${added >= 0 ? '+' : ''}${Math.ceil(added).toLocaleString('en-US')} ms${missing}`,
      met: added <= GOALS.freshnessAddedP99Ms && unobserved === 0,
    });
  }
  if (lookups !== undefined) {
    checks.push(atLeast(`lookups ≥ ${GOALS.lookupsToRedisBenchmark} × redis-benchmark`, lookups.api.perSecond / lookups.redis.perSecond, GOALS.lookupsToRedisBenchmark));
    checks.push({ goal: `lookups p99 ≤ ${GOALS.lookupsP99Ms} ms`, figure: `${lookups.api.p99Ms} ms`, met: lookups.api.p99Ms <= GOALS.lookupsP99Ms });
  }
  if (replay !== undefined) {
    checks.push(atLeast(`replay ≥ ${GOALS.replayToSequentialRead} × the sequential read`, replay.replay.perSecond / replay.sequentialRead.perSecond, GOALS.replayToSequentialRead));
  }
  if (memory?.consumerBytes !== undefined) {
    checks.push(atMost(`consumer peak RSS ≤ ${GOALS.consumerPeakRssMib} MiB`, memory.consumerBytes / MIB, GOALS.consumerPeakRssMib, 'MiB'));
  }
  // The metering run's ledger only: what Tally's own consumer wrote, with the append marker each
  // usage event leaves beside its charges. The append phase's synthetic ledger (mostly openings,
  // no markers) would read lower than any ledger Tally keeps, so without metering no figure.
  if (metering !== undefined) {
    checks.push(atMost(`≤ ${GOALS.bytesPerLedgerEvent} bytes per ledger event`, metering.ledgerStorage.bytesPerEvent, GOALS.bytesPerLedgerEvent, 'bytes'));
  }
  return checks;
}

/** A Markdown table of the checks, to print under the results. */
export function formatGoalTable(checks: readonly GoalCheck[]): string {
  const met = checks.filter((check) => check.met).length;
  return [
    `goals of issue 11 reached in this run: ${met} of ${checks.length}`,
    '',
    '| goal | this run | reached |',
    '| --- | ---: | --- |',
    ...checks.map((check) => `| ${check.goal} | ${check.figure} | ${check.met ? 'yes' : 'no'} |`),
  ].join('\n');
}
