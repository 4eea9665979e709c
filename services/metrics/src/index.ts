export {
  createMetricsRegistry,
  DEFAULT_BUCKETS,
  type GaugeOptions,
  type HistogramOptions,
  type MetricsRegistry,
  type MetricsRegistryOptions,
} from './metricsRegistry';
export type { Counter, Gauge, Histogram } from 'prom-client';
