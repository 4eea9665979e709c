export { createMetricsRegistry, type GaugeOptions, type HistogramOptions, type MetricsRegistry } from './metricsRegistry';
export type { Counter, Gauge, Histogram } from 'prom-client';
