import { summariseLatencies } from './percentiles';

describe('summariseLatencies', () => {
  it('takes nearest-rank percentiles, whatever the order of the samples', () => {
    const values = Array.from({ length: 100 }, (_, index) => 100 - index);
    expect(summariseLatencies(values)).toEqual({ samples: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  });

  it('refuses to summarise nothing', () => {
    expect(() => summariseLatencies([])).toThrow(/no latency/);
  });
});
