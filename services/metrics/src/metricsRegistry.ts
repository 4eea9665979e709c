import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Tally's metrics on prom-client, one registry per process (not prom-client's global one, so two
 * app instances in one test process never see each other's series). Every role declares its
 * metrics through this registry; docs/metrics.md lists them all.
 */

interface MetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  /** Declare them `as const`: the metric's label type follows, and a misspelt label fails to compile. */
  readonly labelNames?: readonly L[];
}

export interface GaugeOptions<L extends string = string> extends MetricOptions<L> {
  /**
   * Called at every scrape, for values that are cheaper to read when asked than to keep current
   * (a lag, a pool size). It sets the gauge itself.
   */
  readonly collect?: (gauge: Gauge<L>) => void | Promise<void>;
}

export interface HistogramOptions<L extends string = string> extends MetricOptions<L> {
  /** Upper bounds, ascending; +Inf is implied. */
  readonly buckets?: readonly number[];
}

export interface MetricsRegistry {
  /** Declaring a metric twice alike (two app instances in one process) returns the first one. */
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L>;
  gauge<L extends string = never>(options: GaugeOptions<L>): Gauge<L>;
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L>;
  /** The Prometheus text exposition of every metric in the registry. */
  render(): Promise<string>;
  readonly contentType: string;
}

interface MetricsRegistryOptions {
  /** A failing collect callback keeps its gauge's last values; the scrape still answers. */
  readonly onCollectError?: (error: unknown, metricName: string) => void;
  /** prom-client's default metrics of the Node runtime (heap, event-loop lag, GC, CPU, handles); the main job turns them on. */
  readonly defaultMetrics?: boolean;
}

/** Seconds; spans an in-memory answer (1 ms) to a request that waited for a slow database. */
const DEFAULT_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Kind = typeof Counter | typeof Gauge | typeof Histogram;

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  const registry = new Registry();
  if (options.defaultMetrics === true) collectDefaultMetrics({ register: registry });
  const declared = new Map<string, { kind: Kind; labels: string }>();

  function declare<M>(kind: Kind, metric: MetricOptions<string>, create: () => M): M {
    const labels = (metric.labelNames ?? []).join(',');
    const existing = declared.get(metric.name);
    if (existing === undefined) {
      declared.set(metric.name, { kind, labels });
      return create();
    }
    if (existing.kind !== kind || existing.labels !== labels) {
      throw new Error(`metric ${metric.name} is already registered as a ${existing.kind.name} with other labels`);
    }
    return registry.getSingleMetric(metric.name) as M;
  }

  return {
    contentType: registry.contentType,
    counter: (metric) => declare(Counter, metric, () => new Counter({ ...metric, labelNames: metric.labelNames ?? [], registers: [registry] })),
    gauge<L extends string = never>(metric: GaugeOptions<L>): Gauge<L> {
      const { collect, ...rest } = metric;
      return declare(Gauge, metric, () => {
        const gauge: Gauge<L> = new Gauge<L>({
          ...rest,
          labelNames: rest.labelNames ?? [],
          registers: [registry],
          ...(collect === undefined
            ? {}
            : {
                async collect() {
                  try {
                    await collect(gauge);
                  } catch (error) {
                    options.onCollectError?.(error, metric.name);
                  }
                },
              }),
        });
        return gauge;
      });
    },
    histogram: (metric) =>
      declare(Histogram, metric, () =>
        new Histogram({ ...metric, labelNames: metric.labelNames ?? [], buckets: [...(metric.buckets ?? DEFAULT_BUCKETS)], registers: [registry] }),
      ),
    render: () => registry.metrics(),
  };
}
