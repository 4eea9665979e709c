import { disturbances, formatResultTable, resultRows } from './benchResults';
import { parseConsumerPerformance } from './consumerPerformance';
import type { MeteringResult } from './meteringThroughput';
import { ledgerStorageOf, storageOf } from './tableStorage';

describe('parseConsumerPerformance', () => {
  it('reads the fetch rate (after the group join) and the overall rate from the report line', () => {
    const output = [
      'WARNING: some JVM notice',
      'start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec',
      '2026-11-25 16:34:45:123, 2026-11-25 16:34:48:157, 95.3674, 31.4329, 1000000, 329597.8906, 855, 2179, 43.7666, 458926.1129',
      '',
    ].join('\n');
    expect(parseConsumerPerformance(output, 1_000_000)).toEqual({ messages: 1_000_000, fetchPerSecond: 458926.1129, totalPerSecond: 329597.8906, fetchSeconds: 2.179 });
  });

  it('gives no ceiling, and says why, when it stopped before reading every message (its timeout exits 0)', () => {
    const output = [
      'start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec',
      '2026-11-25 16:34:45:123, 2026-11-25 16:35:48:157, 11.4, 0.18, 120000, 1904.1, 855, 62179, 0.18, 1929.9',
    ].join('\n');
    const result = parseConsumerPerformance(output, 1_000_000);
    expect(result).toMatchObject({ messages: 120_000, failure: 'read 120,000 of 1,000,000 messages before it stopped' });
    expect(result.fetchPerSecond).toBeNaN();

    const rate = (perSecond: number) => ({ messages: 1_000_000, seconds: 1_000_000 / perSecond, perSecond, failedPolls: 0 });
    const metering: MeteringResult = {
      events: 1_000_000,
      balancesPerCustomer: 1,
      ledgerStorage: ledgerStorageOf(storageOf(1_000_000, 1, 0), storageOf(1_000_000, 1, 0)),
      tally: { ...rate(10_000), peakRssBytes: 1, creditConsumedEvents: 1_000_000, lowBalanceWarnedEvents: 0, ledgerEventsPerSecond: 10_000, counters: undefined },
      kafkajsDecode: rate(100_000),
      kafkajsDurable: rate(20_000),
      consumerPerformance: result,
    };
    expect(formatResultTable(resultRows({ metering })).split('\n').find((line) => line.includes('ConsumerPerformance'))).toBe(
      '| 1. metering, 1 consumer process | usage events/s | 10,000 | Kafka ConsumerPerformance | n/a | n/a |',
    );
    expect(disturbances({ metering })).toEqual(['Kafka ConsumerPerformance: read 120,000 of 1,000,000 messages before it stopped; no ceiling from it']);
  });

  it('fails with the output when there is no report', () => {
    expect(() => parseConsumerPerformance('Exception in thread "main"', 1000)).toThrow(/no ConsumerPerformance report/);
  });
});
