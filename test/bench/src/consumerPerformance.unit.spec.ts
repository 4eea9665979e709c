import { parseConsumerPerformance } from './consumerPerformance';

describe('parseConsumerPerformance', () => {
  it('reads the fetch rate (after the group join) and the overall rate from the report line', () => {
    const output = [
      'WARNING: some JVM notice',
      'start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec',
      '2026-11-25 16:34:45:123, 2026-11-25 16:34:48:157, 95.3674, 31.4329, 1000000, 329597.8906, 855, 2179, 43.7666, 458926.1129',
      '',
    ].join('\n');
    expect(parseConsumerPerformance(output)).toEqual({ messages: 1_000_000, fetchPerSecond: 458926.1129, totalPerSecond: 329597.8906, fetchSeconds: 2.179 });
  });

  it('fails with the output when there is no report', () => {
    expect(() => parseConsumerPerformance('Exception in thread "main"')).toThrow(/no ConsumerPerformance report/);
  });
});
