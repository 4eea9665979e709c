import type { AppendCeilingResult } from './appendCeiling';
import type { EntitlementsResult, LookupsResult, UsageLookupsResult } from './balanceLookups';
import type { StatementsResult } from './balanceStatements';
import { derivedFigures, disturbances, freshnessAddedMs, resultRows } from './benchResults';
import type { FreshnessResult } from './freshness';
import { ledgerStorageOf, storageOf } from './tableStorage';

const rate = (perSecond: number) => ({ events: perSecond, seconds: 1, perSecond });
const load = (perSecond: number, p99Ms: number) => ({ perSecond, p50Ms: 1, p99Ms, maxMs: p99Ms, ok: perSecond, non2xx: 0, errors: 0 });

describe('derivedFigures for the growth run', () => {
  const meter = (perSecond: number, cpuMsPerThousand?: number, postgresCpuMsPerThousand?: number) => ({
    messages: 1000,
    seconds: 1000 / perSecond,
    perSecond,
    failedPolls: 0,
    peakRssBytes: 1,
    creditConsumedEvents: 2000,
    lowBalanceWarnedEvents: 0,
    ledgerEventsPerSecond: perSecond * 2,
    counters: undefined,
    ...(cpuMsPerThousand !== undefined ? { cpuMsPerThousand } : {}),
    ...(postgresCpuMsPerThousand !== undefined ? { postgresCpuMsPerThousand } : {}),
  });

  it('says what CPU the consumer and PostgreSQL spent per 1,000 usage events at each size, or that it is unknown', () => {
    const growth = { events: 1000, history: 0, balancesPerCustomer: 2, small: { customers: 1000, tally: meter(10_000, 80.4, 61.6) }, large: { customers: 100_000, tally: meter(4000) } };
    expect(derivedFigures({ growth }).filter((line) => line.startsWith('growth:'))).toEqual([
      'growth: CPU ms per 1,000 usage events (the consumer + PostgreSQL): unknown + unknown at 100,000 customers, 80 + 62 at 1,000',
    ]);
  });

  it('checks for lost or doubled charges against one CreditConsumed per usage event and balance', () => {
    const sized = (consumed: number) => ({ ...meter(10_000), creditConsumedEvents: consumed });
    // Two balances per customer, 1,000 usage events: 2,000 is right, 1,000 lost half.
    const twoBalances = { events: 1000, history: 0, balancesPerCustomer: 2, small: { customers: 1000, tally: sized(2000) }, large: { customers: 100_000, tally: sized(1000) } };
    expect(disturbances({ growth: twoBalances })).toEqual([
      'growth at 100000 customers: 1000 CreditConsumed in the ledger for 1000 usage events on 2 balance(s) per customer',
    ]);
    const oneBalance = { ...twoBalances, balancesPerCustomer: 1, small: { customers: 1000, tally: sized(1000) }, large: { customers: 100_000, tally: sized(1001) } };
    expect(disturbances({ growth: oneBalance })).toEqual([
      'growth at 100000 customers: 1001 CreditConsumed in the ledger for 1000 usage events on 1 balance(s) per customer',
    ]);
  });
});

describe('derivedFigures for the metering run', () => {
  it("puts the CPU Tally's consumer and PostgreSQL spent per 1,000 usage events beside the ceilings'", () => {
    const consumed = (perSecond: number, cpuMsPerThousand: number, postgresCpuMsPerThousand?: number) => ({
      messages: 1000,
      seconds: 1000 / perSecond,
      perSecond,
      failedPolls: 0,
      cpuMsPerThousand,
      ...(postgresCpuMsPerThousand !== undefined ? { postgresCpuMsPerThousand } : {}),
    });
    const metering = {
      events: 1000,
      balancesPerCustomer: 2,
      // 2,000 ledger events; 1,000 append markers, one per usage event.
      ledgerStorage: ledgerStorageOf(storageOf(2000, 400_000, 200_000), storageOf(1000, 60_000, 44_000)),
      tally: { ...consumed(5000, 70.4, 55.5), peakRssBytes: 1, creditConsumedEvents: 2000, lowBalanceWarnedEvents: 0, ledgerEventsPerSecond: 10_000, counters: undefined },
      kafkajsDecode: consumed(100_000, 9.6),
      kafkajsDurable: consumed(50_000, 12, 8.2),
      consumerPerformance: { messages: 1000, fetchPerSecond: 200_000, totalPerSecond: 100_000, fetchSeconds: 0.005 },
    };
    expect(derivedFigures({ metering }).filter((line) => line.includes('CPU'))).toEqual([
      'metering: CPU ms per 1,000 usage events (the consumer + PostgreSQL): Tally 70 + 56, kafkajs durable 12 + 8, kafkajs decode-only 10 + unknown',
    ]);
    expect(derivedFigures({ metering }).find((line) => line.includes('bytes per ledger event'))).toContain(
      '352 bytes per ledger event over the 2000 in the ledger, heap + TOAST + indexes (event_log: heap 200, indexes 100; append_markers, 1000 rows: heap 30, indexes 22, 52 in all)',
    );
  });
});

describe('derivedFigures for the replay', () => {
  it('says what CPU the replaying process, PostgreSQL and Redis spent per 1,000 events, or that it is unknown', () => {
    const replay = {
      replay: { ...rate(100_000), cpuMsPerThousand: 7.6, redisCpuMsPerThousand: 0.4 },
      sequentialRead: { ...rate(1_000_000), bytes: 1 },
    };
    expect(derivedFigures({ replay }).filter((line) => line.startsWith('replay:'))).toEqual([
      'replay: CPU ms per 1,000 events (the bench process, which replays + PostgreSQL + Redis): 7.6 + unknown + 0.4',
    ]);
  });
});

describe('resultRows', () => {
  it('puts appends beside the indexed COPY, and storage per event beside the bare rows, as the share of the ceiling', () => {
    const append: AppendCeilingResult = {
      batchSize: 500,
      streamsPerBatch: 500,
      appendMany: rate(10_000),
      copyAll: rate(80_000),
      copyPerBatch: rate(40_000),
      copyIndexed: rate(20_000),
      storage: storageOf(1000, 600_000, 300_000),
      bareStorage: storageOf(900, 270_000, 0),
    };
    const rows = resultRows({ append });
    expect(rows.find((row) => row.ceilingName === 'one COPY into an indexed copy of events')).toMatchObject({ tally: 10_000, ceiling: 20_000, ratio: 0.5 });
    expect(rows.find((row) => row.unit === 'bytes')).toMatchObject({ tally: 900, ceiling: 300, ratio: 300 / 900 });
  });

  it('puts lookups beside the bare Fastify + ioredis route, for the rate and the p99', () => {
    const lookups: LookupsResult = {
      connections: 50,
      durationSeconds: 15,
      api: load(4000, 20),
      bareRoute: load(16_000, 5),
      redis: { perSecond: 40_000, p50Ms: 1, p99Ms: 2, maxMs: 2, requests: 200_000 },
      peakRssBytes: 1,
    };
    const rows = resultRows({ lookups }).filter((row) => row.ceilingName.startsWith('bare Fastify'));
    expect(rows.map((row) => [row.unit, row.ratio])).toEqual([
      ['requests/s', 0.25],
      ['ms', 0.25],
    ]);
  });
});

describe('entitlement rows', () => {
  it('put the entitlement checks beside redis-benchmark HGETALL at the same concurrency, for the rate and the p99', () => {
    const entitlements: EntitlementsResult = {
      connections: 50,
      durationSeconds: 15,
      api: load(12_000, 4),
      redis: { perSecond: 40_000, p50Ms: 1, p99Ms: 2, maxMs: 2, requests: 200_000 },
      peakRssBytes: 1,
    };
    const rows = resultRows({ entitlements });
    expect(rows.map((row) => [row.measurement, row.ceilingName, row.ratio])).toEqual([
      ['8. GET /v1/customers/{id}/entitlements/{product}', 'redis-benchmark HGETALL', 0.3],
      ['8. GET /v1/customers/{id}/entitlements/{product} p99', 'redis-benchmark HGETALL p99', 0.5],
    ]);
    expect(disturbances({ entitlements: { ...entitlements, api: { ...entitlements.api, non2xx: 3 } } })).toEqual([
      'entitlements: 3 non-2xx responses and 0 connection errors (not counted as served)',
    ]);
  });
});

describe('usage lookup rows', () => {
  it('put the lookups with a full dead-letter log beside the same lookups with none, for the rate and the p99', () => {
    const usage: UsageLookupsResult = { connections: 50, durationSeconds: 15, deadLetters: 1000, emptyLog: load(8_000, 10), fullLog: load(2_000, 40), peakRssBytes: 1 };
    expect(resultRows({ usage }).map((row) => [row.measurement, row.ceilingName, row.ratio])).toEqual([
      ['9. GET /v1/customers/{id}/usage-events/{eventId}, 1000 dead letters', 'same, no dead letters', 0.25],
      ['9. GET /v1/customers/{id}/usage-events/{eventId}, 1000 dead letters p99', 'same, no dead letters, p99', 0.25],
    ]);
    expect(disturbances({ usage: { ...usage, fullLog: { ...usage.fullLog, errors: 2 } } })).toEqual([
      'usage lookups, dead letters: 0 non-2xx responses and 2 connection errors (not counted as served)',
    ]);
  });
});

describe('statement rows', () => {
  it("put a month's statements after a year of history beside the same month's of a balance that holds it alone, and time the first apart", () => {
    const statements: StatementsResult = {
      connections: 4,
      durationSeconds: 15,
      periodEntries: 10_000,
      historyEntries: 110_000,
      firstMs: 2_345.6,
      fromNine: load(25, 200),
      longLedger: load(40, 120),
      monthBefore: load(45, 110),
      year: load(10, 400),
      shortLedger: load(50, 100),
      peakRssBytes: 1,
    };
    expect(resultRows({ statements }).map((row) => [row.measurement, row.ceilingName, row.ratio])).toEqual([
      ['10. GET /v1/credit-balances/{id}/statement, a month of 10,000 entries after 110,000', 'same month, a balance of it alone', 0.8],
      ['10. GET /v1/credit-balances/{id}/statement, a month of 10,000 entries after 110,000 p99', 'same month alone, p99', 100 / 120],
      ['10. GET /v1/credit-balances/{id}/statement, a month of 10,000 entries after 110,000, from 09:00 UTC on the 1st', 'same month alone, from midnight', 0.5],
      ['10. GET /v1/credit-balances/{id}/statement, a month of 10,000 entries after 110,000, from 09:00 UTC on the 1st p99', 'same month alone, from midnight, p99', 0.5],
      ["10. GET /v1/credit-balances/{id}/statement, the month before it, with that month's 10,000 entries after its end", 'same month alone', 0.9],
      ["10. GET /v1/credit-balances/{id}/statement, the month before it, with that month's 10,000 entries after its end p99", 'same month alone, p99', 100 / 110],
      ['10. GET /v1/credit-balances/{id}/statement, the year of 120,000 entries to that month\'s end', 'same month alone', 0.2],
      ['10. GET /v1/credit-balances/{id}/statement, the year of 120,000 entries to that month\'s end p99', 'same month alone, p99', 0.25],
    ]);
    expect(derivedFigures({ statements })).toEqual([
      'statements: the first of the month from 09:00 after 110,000 entries, on a new API process, took 2346 ms (the load asks it again 4 at a time)',
    ]);
    expect(disturbances({ statements: { ...statements, longLedger: { ...statements.longLedger, non2xx: 1 }, fromNine: { ...statements.fromNine, errors: 2 } } })).toEqual([
      'statements, from 09:00 after the history: 0 non-2xx responses and 2 connection errors (not counted as served)',
      'statements, after the history: 1 non-2xx responses and 0 connection errors (not counted as served)',
    ]);
    expect(disturbances({ statements: { ...statements, monthBefore: { ...statements.monthBefore, errors: 1 }, year: { ...statements.year, non2xx: 3 } } })).toEqual([
      'statements, the month before: 0 non-2xx responses and 1 connection errors (not counted as served)',
      'statements, the year: 3 non-2xx responses and 0 connection errors (not counted as served)',
    ]);
  });
});

describe('storageOf', () => {
  it('counts heap and indexes per row, and has no per-row figure for an empty table', () => {
    expect(storageOf(4, 1000, 200).bytesPerRow).toBe(300);
    expect(storageOf(0, 8192, 8192).bytesPerRow).toBeNaN();
  });
});

describe('freshnessAddedMs', () => {
  it("is Tally's latency less the Kafka delivery floor, per percentile", () => {
    const latency = (p50: number, p95: number, p99: number, max: number) => ({ p50, p95, p99, max });
    const freshness = { tally: latency(40, 90, 150, 300), kafkaDelivery: latency(10, 60, 107, 310) } as unknown as FreshnessResult;
    expect(freshnessAddedMs(freshness)).toEqual({ p50: 30, p95: 30, p99: 43, max: -10 });
    expect(derivedFigures({ freshness })).toEqual(['freshness: Tally adds +30 ms at p50, +30 ms at p95, +43 ms at p99 over the Kafka delivery floor']);
  });
});
