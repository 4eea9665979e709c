import { parseRedisBenchmarkCsv } from './redisBenchmark';

describe('parseRedisBenchmarkCsv', () => {
  it('reads requests per second and latencies from the --csv output', () => {
    const output = [
      '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
      '"HGETALL bench_1:g1:balance:bal-__rand_int__","25294.04","1.401","0.104","1.223","2.511","3.543","12.311"',
    ].join('\n');
    expect(parseRedisBenchmarkCsv(output)).toEqual({ perSecond: 25294.04, p50Ms: 1.223, p99Ms: 3.543, maxMs: 12.311 });
  });

  it('fails with the output when it is not the CSV report', () => {
    expect(() => parseRedisBenchmarkCsv('Could not connect to Redis at 127.0.0.1:6379')).toThrow(/no redis-benchmark CSV/);
  });
});
