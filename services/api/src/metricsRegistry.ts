/**
 * A small Prometheus registry (text exposition format 0.0.4) for every part of Tally that
 * reports metrics: the API's HTTP latency, the consumer's counters, the projector's lag. Kept
 * in-house rather than taking prom-client: Tally needs three metric kinds and one output
 * format, which is less code than adapting a general library's global-registry defaults.
 */

export type Labels = Readonly<Record<string, string | number>>;

export interface Counter {
  inc(labels?: Labels, amount?: number): void;
}

export interface Gauge {
  set(labels: Labels, value: number): void;
  set(value: number): void;
  inc(labels?: Labels, amount?: number): void;
  dec(labels?: Labels, amount?: number): void;
}

export interface Histogram {
  observe(labels: Labels, value: number): void;
  observe(value: number): void;
}

interface MetricOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
}

export interface GaugeOptions extends MetricOptions {
  /**
   * Called at every scrape before rendering, for values that are cheaper to read when asked
   * than to keep current (a lag, a pool size). It sets the gauge itself.
   */
  readonly collect?: (gauge: Gauge) => void | Promise<void>;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; +Inf is implied. */
  readonly buckets?: readonly number[];
}

export interface MetricsRegistry {
  /** Creating a metric twice with the same name, kind and labels returns the first one. */
  counter(options: MetricOptions): Counter;
  gauge(options: GaugeOptions): Gauge;
  histogram(options: HistogramOptions): Histogram;
  render(): Promise<string>;
}

/** Seconds; spans an in-memory answer (1 ms) to a request that waited for a slow database. */
export const DEFAULT_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Kind = 'counter' | 'gauge' | 'histogram';

interface Metric {
  readonly kind: Kind;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly handle: Counter | Gauge | Histogram;
  lines(): string[];
  collect?: () => void | Promise<void>;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** A series key: the label values in labelNames order; also checks that exactly those labels are given. */
function seriesKey(metric: { name: string; labelNames: readonly string[] }, labels: Labels): string[] {
  const given = Object.keys(labels);
  if (given.length !== metric.labelNames.length || given.some((name) => !metric.labelNames.includes(name))) {
    throw new Error(`${metric.name} takes the labels [${metric.labelNames.join(', ')}], got [${given.join(', ')}]`);
  }
  return metric.labelNames.map((name) => String(labels[name]));
}

function renderLabels(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const pairs = names.map((name, index) => `${name}="${escapeLabelValue(values[index]!)}"`);
  if (extra !== undefined) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function validate(options: MetricOptions): readonly string[] {
  if (!METRIC_NAME.test(options.name)) throw new Error(`invalid metric name "${options.name}"`);
  const labelNames = options.labelNames ?? [];
  for (const label of labelNames) {
    if (!LABEL_NAME.test(label) || label.startsWith('__') || label === 'le') {
      throw new Error(`invalid label name "${label}" on ${options.name}`);
    }
  }
  return labelNames;
}

/** Overloads take (labels, value) or (value) alone for metrics without labels. */
function splitArgs(labelsOrValue: Labels | number | undefined, value: number | undefined, fallback: number): [Labels, number] {
  if (typeof labelsOrValue === 'number') return [{}, labelsOrValue];
  return [labelsOrValue ?? {}, value ?? fallback];
}

function createCounter(name: string, labelNames: readonly string[]): Pick<Metric, 'handle' | 'lines'> {
  const series = new Map<string, { values: string[]; value: number }>();
  const handle: Counter = {
    inc(labels = {}, amount = 1) {
      if (!(amount >= 0)) throw new Error(`${name}: a counter only goes up (got ${amount})`);
      const values = seriesKey({ name, labelNames }, labels);
      const key = JSON.stringify(values);
      const current = series.get(key) ?? { values, value: 0 };
      current.value += amount;
      series.set(key, current);
    },
  };
  return {
    handle,
    lines: () => [...series.values()].map((s) => `${name}${renderLabels(labelNames, s.values)} ${formatValue(s.value)}`),
  };
}

function createGauge(name: string, labelNames: readonly string[]): Pick<Metric, 'handle' | 'lines'> {
  const series = new Map<string, { values: string[]; value: number }>();
  const update = (labels: Labels, change: (value: number) => number) => {
    const values = seriesKey({ name, labelNames }, labels);
    const key = JSON.stringify(values);
    const current = series.get(key) ?? { values, value: 0 };
    current.value = change(current.value);
    series.set(key, current);
  };
  const handle: Gauge = {
    set(labelsOrValue: Labels | number, value?: number) {
      const [labels, next] = splitArgs(labelsOrValue, value, 0);
      update(labels, () => next);
    },
    inc(labels = {}, amount = 1) {
      update(labels, (value) => value + amount);
    },
    dec(labels = {}, amount = 1) {
      update(labels, (value) => value - amount);
    },
  };
  return {
    handle,
    lines: () => [...series.values()].map((s) => `${name}${renderLabels(labelNames, s.values)} ${formatValue(s.value)}`),
  };
}

function createHistogram(name: string, labelNames: readonly string[], buckets: readonly number[]): Pick<Metric, 'handle' | 'lines'> {
  for (let index = 1; index < buckets.length; index += 1) {
    if (!(buckets[index]! > buckets[index - 1]!)) throw new Error(`${name}: buckets must be strictly ascending`);
  }
  const series = new Map<string, { values: string[]; counts: number[]; sum: number; count: number }>();
  const handle: Histogram = {
    observe(labelsOrValue: Labels | number, value?: number) {
      const [labels, observed] = splitArgs(labelsOrValue, value, Number.NaN);
      if (Number.isNaN(observed)) throw new Error(`${name}: observe needs a value`);
      const values = seriesKey({ name, labelNames }, labels);
      const key = JSON.stringify(values);
      const current = series.get(key) ?? { values, counts: buckets.map(() => 0), sum: 0, count: 0 };
      // Counts are kept per bucket and made cumulative when rendered.
      const bucket = buckets.findIndex((bound) => observed <= bound);
      if (bucket >= 0) current.counts[bucket]! += 1;
      current.sum += observed;
      current.count += 1;
      series.set(key, current);
    },
  };
  return {
    handle,
    lines: () =>
      [...series.values()].flatMap((s) => {
        let cumulative = 0;
        const bucketLines = buckets.map((bound, index) => {
          cumulative += s.counts[index]!;
          return `${name}_bucket${renderLabels(labelNames, s.values, ['le', formatValue(bound)])} ${cumulative}`;
        });
        return [
          ...bucketLines,
          `${name}_bucket${renderLabels(labelNames, s.values, ['le', '+Inf'])} ${s.count}`,
          `${name}_sum${renderLabels(labelNames, s.values)} ${formatValue(s.sum)}`,
          `${name}_count${renderLabels(labelNames, s.values)} ${s.count}`,
        ];
      }),
  };
}

export interface MetricsRegistryOptions {
  /** A failing collect callback keeps its gauge's last values; the scrape still answers. */
  readonly onCollectError?: (error: unknown, metricName: string) => void;
}

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  const metrics = new Map<string, Metric>();

  function register<T extends Counter | Gauge | Histogram>(
    kind: Kind,
    options: MetricOptions,
    create: (labelNames: readonly string[]) => Pick<Metric, 'handle' | 'lines'>,
  ): T {
    const labelNames = validate(options);
    const existing = metrics.get(options.name);
    if (existing !== undefined) {
      // Two parts of one process (or two app instances in a test) may declare the same metric.
      if (existing.kind !== kind || existing.labelNames.join(',') !== labelNames.join(',')) {
        throw new Error(`metric ${options.name} is already registered as a ${existing.kind} with other labels`);
      }
      return existing.handle as T;
    }
    const metric: Metric = { kind, name: options.name, help: options.help, labelNames, ...create(labelNames) };
    metrics.set(options.name, metric);
    return metric.handle as T;
  }

  return {
    counter: (counterOptions) =>
      register<Counter>('counter', counterOptions, (labelNames) => createCounter(counterOptions.name, labelNames)),
    gauge(gaugeOptions) {
      const gauge = register<Gauge>('gauge', gaugeOptions, (labelNames) => createGauge(gaugeOptions.name, labelNames));
      const metric = metrics.get(gaugeOptions.name)!;
      const { collect } = gaugeOptions;
      if (collect !== undefined) metric.collect = () => collect(gauge);
      return gauge;
    },
    histogram: (histogramOptions) =>
      register<Histogram>('histogram', histogramOptions, (labelNames) =>
        createHistogram(histogramOptions.name, labelNames, histogramOptions.buckets ?? DEFAULT_BUCKETS),
      ),
    async render() {
      const blocks: string[] = [];
      for (const metric of metrics.values()) {
        try {
          await metric.collect?.();
        } catch (error) {
          options.onCollectError?.(error, metric.name);
        }
        blocks.push(
          [`# HELP ${metric.name} ${escapeHelp(metric.help)}`, `# TYPE ${metric.name} ${metric.kind}`, ...metric.lines()].join('\n'),
        );
      }
      return blocks.length === 0 ? '' : `${blocks.join('\n')}\n`;
    },
  };
}
