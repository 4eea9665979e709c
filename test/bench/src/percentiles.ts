export interface LatencySummary {
  readonly samples: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentiles of latencies in milliseconds. */
export function summariseLatencies(values: readonly number[]): LatencySummary {
  if (values.length === 0) throw new Error('no latency was measured');
  const sorted = [...values].sort((a, b) => a - b);
  const at = (percentile: number) => sorted[Math.min(sorted.length - 1, Math.ceil((percentile / 100) * sorted.length) - 1)]!;
  return { samples: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: sorted[sorted.length - 1]! };
}
