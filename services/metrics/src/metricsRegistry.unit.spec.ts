import { createMetricsRegistry } from './metricsRegistry';

describe('createMetricsRegistry', () => {
  it('renders counters, gauges and histograms in the Prometheus text format', async () => {
    const registry = createMetricsRegistry();
    const consumed = registry.counter({ name: 'tally_events_total', help: 'Events by outcome.', labelNames: ['outcome'] });
    consumed.inc({ outcome: 'matched' });
    consumed.inc({ outcome: 'matched' }, 2);
    consumed.inc({ outcome: 'skipped' });
    registry.gauge({ name: 'tally_lag', help: 'Lag.\nIn events.', labelNames: ['partition'] }).set({ partition: 0 }, 7);
    registry.gauge({ name: 'tally_up', help: 'Up.' }).set(1);
    const latency = registry.histogram({ name: 'tally_latency_seconds', help: 'Latency.', labelNames: ['route'], buckets: [0.1, 1] });
    latency.observe({ route: '/a' }, 0.05);
    latency.observe({ route: '/a' }, 0.5);
    latency.observe({ route: '/a' }, 3);

    // prom-client's exposition: a blank line between metrics, `le` first among a bucket's labels.
    expect(await registry.render()).toBe(
      [
        '# HELP tally_events_total Events by outcome.',
        '# TYPE tally_events_total counter',
        'tally_events_total{outcome="matched"} 3',
        'tally_events_total{outcome="skipped"} 1',
        '',
        '# HELP tally_lag Lag.\\nIn events.',
        '# TYPE tally_lag gauge',
        'tally_lag{partition="0"} 7',
        '',
        '# HELP tally_up Up.',
        '# TYPE tally_up gauge',
        'tally_up 1',
        '',
        '# HELP tally_latency_seconds Latency.',
        '# TYPE tally_latency_seconds histogram',
        'tally_latency_seconds_bucket{le="0.1",route="/a"} 1',
        'tally_latency_seconds_bucket{le="1",route="/a"} 2',
        'tally_latency_seconds_bucket{le="+Inf",route="/a"} 3',
        'tally_latency_seconds_sum{route="/a"} 3.55',
        'tally_latency_seconds_count{route="/a"} 3',
        '',
      ].join('\n'),
    );
  });

  it('escapes label values', async () => {
    const registry = createMetricsRegistry();
    registry.counter({ name: 'c', help: 'h', labelNames: ['v'] }).inc({ v: 'a"b\\c\nd' });
    expect(await registry.render()).toContain('c{v="a\\"b\\\\c\\nd"} 1');
  });

  it('collects gauges at scrape time, and keeps the last values when a collect fails', async () => {
    const errors: string[] = [];
    const registry = createMetricsRegistry({ onCollectError: (_error, name) => errors.push(name) });
    let lag = 5;
    registry.gauge({
      name: 'tally_projector_lag_events',
      help: 'Lag.',
      collect: (gauge) => {
        if (lag < 0) throw new Error('unreachable');
        gauge.set(lag);
      },
    });
    expect(await registry.render()).toContain('tally_projector_lag_events 5');
    lag = -1;
    expect(await registry.render()).toContain('tally_projector_lag_events 5');
    expect(errors).toEqual(['tally_projector_lag_events']);
  });

  it('returns the same metric when it is declared twice alike, and refuses a conflicting declaration', () => {
    const registry = createMetricsRegistry();
    const first = registry.counter({ name: 'x_total', help: 'X.', labelNames: ['a'] });
    expect(registry.counter({ name: 'x_total', help: 'X.', labelNames: ['a'] })).toBe(first);
    expect(() => registry.gauge({ name: 'x_total', help: 'X.', labelNames: ['a'] })).toThrow(/already registered/);
    expect(() => registry.counter({ name: 'x_total', help: 'X.', labelNames: ['b'] })).toThrow(/already registered/);
  });

  it('refuses invalid names, wrong labels and falling counters', () => {
    const registry = createMetricsRegistry();
    expect(() => registry.counter({ name: 'bad-name', help: 'h' })).toThrow(/invalid metric name/i);
    expect(() => registry.histogram({ name: 'h', help: 'h', labelNames: ['le'] })).toThrow(/reserved label/);
    const counter = registry.counter({ name: 'c_total', help: 'h', labelNames: ['a'] as const });
    // @ts-expect-error -- labels declared `as const` make a wrong label a compile error too.
    expect(() => counter.inc({ b: '1' })).toThrow(/not included in initial labelset/);
    expect(() => counter.inc({ a: '1' }, -1)).toThrow(/not possible to decrease a counter/);
  });

  it('renders no series for an empty registry', async () => {
    expect((await createMetricsRegistry().render()).trim()).toBe('');
  });

  it("adds the Node runtime's default metrics when asked, and keeps registries apart", async () => {
    const withRuntime = createMetricsRegistry({ defaultMetrics: true });
    const rendered = await withRuntime.render();
    for (const name of [
      'process_cpu_seconds_total',
      'process_open_fds',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_gc_duration_seconds',
      'nodejs_active_handles_total',
    ]) {
      expect(rendered).toContain(`# TYPE ${name} `);
    }
    expect(await createMetricsRegistry().render()).not.toContain('process_cpu_seconds_total');
  });
});
