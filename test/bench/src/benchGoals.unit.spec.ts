import type { AppendCeilingResult } from './appendCeiling';
import type { LookupsResult } from './balanceLookups';
import { formatGoalTable, goalChecks } from './benchGoals';
import type { FreshnessResult } from './freshness';
import { summariseLatencies } from './percentiles';
import type { GrowthResult } from './meteringGrowth';
import type { MeteringResult } from './meteringThroughput';
import type { ReplayResult } from './replayThroughput';
import { ledgerStorageOf, storageOf } from './tableStorage';

const rate = (perSecond: number) => ({ events: perSecond, seconds: 1, perSecond });
const consumed = (perSecond: number) => ({ messages: 1000, seconds: 1000 / perSecond, perSecond, failedPolls: 0 });
const tally = (perSecond: number, peakRssBytes = 1) => ({
  ...consumed(perSecond),
  peakRssBytes,
  creditConsumedEvents: 2000,
  lowBalanceWarnedEvents: 0,
  ledgerEventsPerSecond: perSecond * 2,
  counters: undefined,
});

// The ledger's 1,000 events, and the append markers' rows (one per usage event) beside them.
const metering = (tallyPerSecond: number, ledgerBytesPerRow: number, markerBytesPerEvent = 0): MeteringResult => ({
  events: 1000,
  balancesPerCustomer: 2,
  ledgerStorage: ledgerStorageOf(storageOf(1000, ledgerBytesPerRow * 1000, 0), storageOf(500, markerBytesPerEvent * 1000, 0)),
  tally: tally(tallyPerSecond),
  kafkajsDecode: consumed(100_000),
  kafkajsDurable: consumed(10_000),
  consumerPerformance: { messages: 1000, fetchPerSecond: 200_000, totalPerSecond: 100_000, fetchSeconds: 0.005 },
});

const append = (appendPerSecond: number, bytesPerRow: number): AppendCeilingResult => ({
  batchSize: 500,
  streamsPerBatch: 500,
  appendMany: rate(appendPerSecond),
  copyAll: rate(100_000),
  copyPerBatch: rate(50_000),
  copyIndexed: rate(25_000),
  storage: storageOf(1000, bytesPerRow * 1000, 0),
  bareStorage: storageOf(1000, 100_000, 0),
});

const byGoal = (results: Parameters<typeof goalChecks>[0]) => Object.fromEntries(goalChecks(results).map((check) => [check.goal, [check.figure, check.met]]));

describe('goalChecks', () => {
  it('holds metering against both kafkajs ceilings, met only at or above each threshold', () => {
    expect(byGoal({ metering: metering(7_000, 290) })).toEqual({
      'metering ≥ 0.3 × kafkajs decode-only': ['0.070', false],
      'metering ≥ 0.7 × the durable ceiling': ['0.700', true],
      '≤ 300 bytes per ledger event': ['290 bytes', true],
    });
    expect(byGoal({ metering: metering(6_999, 300.2) })).toMatchObject({
      'metering ≥ 0.7 × the durable ceiling': ['0.699', false],
      '≤ 300 bytes per ledger event': ['301 bytes', false],
    });
  });

  it("takes bytes per ledger event from the metering run's ledger with its append markers, never the append phase's", () => {
    // 279 bytes of event_log and 52 of append_markers per ledger event: 331, over the goal.
    const checks = goalChecks({ metering: metering(1_000, 279, 52), append: append(60_000, 250) });
    expect(checks.filter((check) => check.goal.includes('bytes'))).toEqual([{ goal: '≤ 300 bytes per ledger event', figure: '331 bytes', met: false }]);
    expect(checks.find((check) => check.goal.startsWith('append'))).toEqual({ goal: 'append ≥ 0.5 × one COPY into a bare table', figure: '0.600', met: true });
    // The append phase's synthetic ledger (mostly openings, no markers) is no figure for the goal.
    expect(goalChecks({ append: append(60_000, 250) }).filter((check) => check.goal.includes('bytes'))).toEqual([]);
  });

  it('says freshness in ms added over the Kafka floor, lookups by rate and by p99, replay, growth and RSS', () => {
    const latency = (p99: number) => ({ p50: 1, p95: 1, p99, max: p99 });
    const freshness = { tally: latency(150), kafkaDelivery: latency(107), unobserved: 0 } as unknown as FreshnessResult;
    const lookups: LookupsResult = {
      connections: 50,
      durationSeconds: 15,
      api: { perSecond: 12_000, p50Ms: 1, p99Ms: 5, maxMs: 9, ok: 12_000, non2xx: 0, errors: 0 },
      bareRoute: { perSecond: 16_000, p50Ms: 1, p99Ms: 4, maxMs: 9, ok: 16_000, non2xx: 0, errors: 0 },
      redis: { perSecond: 40_000, p50Ms: 1, p99Ms: 2, maxMs: 2, requests: 200_000 },
      peakRssBytes: 1,
    };
    const replay: ReplayResult = { replay: rate(40_000), sequentialRead: { ...rate(100_000), bytes: 1 } };
    const growth: GrowthResult = { events: 1000, history: 10_000_000, balancesPerCustomer: 2, small: { customers: 1000, tally: tally(10_000) }, large: { customers: 100_000, tally: tally(7_900) } };
    expect(byGoal({ freshness, lookups, replay, growth, memory: { bareNodeBytes: 1, consumerBytes: 256 * 1024 * 1024 } })).toEqual({
      "freshness: Tally adds ≤ 30 ms to Kafka's delivery at p99": ['+43 ms', false],
      'lookups ≥ 0.3 × redis-benchmark': ['0.300', true],
      'lookups p99 ≤ 5 ms': ['5 ms', true],
      'replay ≥ 0.5 × the sequential read': ['0.400', false],
      'growth: metering at 100,000 customers, 10,000,000 events of history ≥ 0.8 × at 1,000': ['0.790', false],
      'consumer peak RSS ≤ 256 MiB': ['256 MiB', true],
    });
  });

  it('does not call freshness reached while tracked events never showed, and says how many', () => {
    // 900 of 1,000 tracked events seen at 20 ms, 100 never; the floor 5 ms: +15 ms over the seen ones alone.
    const freshness = {
      tally: summariseLatencies(Array.from({ length: 900 }, () => 20)),
      kafkaDelivery: summariseLatencies(Array.from({ length: 1000 }, () => 5)),
      unobserved: 100,
    } as unknown as FreshnessResult;
    expect(goalChecks({ freshness })).toEqual([
      { goal: "freshness: Tally adds ≤ 30 ms to Kafka's delivery at p99", figure: '+15 ms, 100 of 1,000 tracked never showed', met: false },
    ]);
  });

  it('leaves out the goals of phases that did not run, and counts what was reached', () => {
    expect(goalChecks({})).toEqual([]);
    expect(formatGoalTable(goalChecks({ append: append(10_000, 288) })).split('\n')).toEqual([
      'goals of issue 11 reached in this run: 0 of 1',
      '',
      '| goal | this run | reached |',
      '| --- | ---: | --- |',
      '| append ≥ 0.5 × one COPY into a bare table | 0.100 | no |',
    ]);
  });
});
