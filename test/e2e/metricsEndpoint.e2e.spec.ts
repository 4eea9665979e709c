import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { dashboardMetrics, dashboardQueries, documentedMetrics, metricNamesIn, readDashboard, startWholeMainJob, type WholeMainJob } from '@tally/test-support';

const ROOT = path.join(__dirname, '..', '..');

/**
 * The main job's /metrics, as Prometheus scrapes it, with every role running: Tally's own metrics
 * and the Node runtime's, each listed in docs/metrics.md, and every metric the alerting rules
 * (infra/prometheus/tally-alerts.yml) and the Grafana dashboard (infra/grafana) read.
 */
jest.setTimeout(120_000);

describe('GET /metrics of the main job', () => {
  let job: WholeMainJob | undefined;
  let body: string;

  beforeAll(async () => {
    job = await startWholeMainJob({ prefix: 'metrics_e2e', apiKey: 'metrics-endpoint-test-key' });
    // Probes first, so the request histogram has the series the alerting rules leave out by route.
    expect([200, 503]).toContain((await fetch(`${job.base}/health`)).status);
    expect([200, 503]).toContain((await fetch(`${job.base}/health/ready`)).status);
    const response = await fetch(`${job.base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    body = await response.text();
  });

  afterAll(async () => {
    await job?.stop();
  });

  it.each([
    ['process_cpu_seconds_total', 'counter'],
    ['process_resident_memory_bytes', 'gauge'],
    ['nodejs_heap_size_used_bytes', 'gauge'],
    ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
    ['nodejs_gc_duration_seconds', 'histogram'],
    ['nodejs_active_handles_total', 'gauge'],
    ['tally_projector_lag_events', 'gauge'],
    ['tally_event_store_append_seconds', 'histogram'],
    ['tally_http_request_duration_seconds', 'histogram'],
  ])('exports %s (%s)', (name, type) => {
    expect(body).toContain(`# TYPE ${name} ${type}`);
  });

  it('exports only metrics docs/metrics.md lists', () => {
    const exported = [...body.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
    expect(exported.length).toBeGreaterThan(20);
    const names = documentedMetrics();
    expect(exported.filter((name) => !names.has(name))).toEqual([]);
  });

  it('exports every metric the Grafana dashboard reads', () => {
    const read = dashboardMetrics(readDashboard());
    expect(read.length).toBeGreaterThan(15);
    const exported = new Set([...body.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!));
    expect(read.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('exports every metric the alerting rules read', () => {
    const rules = parse(readFileSync(path.join(ROOT, 'infra', 'prometheus', 'tally-alerts.yml'), 'utf8')) as {
      groups: { rules: { expr: string }[] }[];
    };
    // Metric names in PromQL; a histogram's series end in _bucket, _count or _sum.
    const read = new Set(
      rules.groups
        .flatMap((group) => group.rules)
        .flatMap((rule) => metricNamesIn(rule.expr)),
    );
    expect(read.size).toBeGreaterThan(10);
    const exported = new Set([...body.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!));
    expect([...read].filter((name) => !exported.has(name))).toEqual([]);
  });

  it('labels requests with the route and status values the alerting rules and the dashboard match', () => {
    const rules = readFileSync(path.join(ROOT, 'infra', 'prometheus', 'tally-alerts.yml'), 'utf8');
    // The rules count 5xx by a three-digit status, and leave the probes and scrapes out by their
    // route label, with one matcher the dashboard's request panels share.
    expect(rules).toContain('status=~"5.."');
    const matchers = new Set([...rules.matchAll(/route!~"([^"]*)"/g)].map((match) => match[1]!));
    expect(matchers.size).toBe(1);
    const [leftOut] = [...matchers];
    const panels = dashboardQueries(readDashboard()).filter((query) => query.expr.includes('tally_http_request_duration_seconds'));
    expect(panels.length).toBeGreaterThan(2);
    expect(panels.filter((query) => !query.expr.includes(`route!~"${leftOut}"`)).map((query) => query.panel)).toEqual([]);
    // PromQL anchors a regex matcher at both ends: each probe route must match it whole.
    const anchored = new RegExp(`^(?:${leftOut})$`);
    const probed = [...body.matchAll(/^tally_http_request_duration_seconds_count\{method="GET",route="(\/health[^"]*)",status="(?:200|503)"\} 1$/gm)].map((match) => match[1]!);
    expect(probed.sort()).toEqual(['/health', '/health/ready']);
    expect(probed.filter((route) => !anchored.test(route))).toEqual([]);
    expect(anchored.test('/v1/balances/:id')).toBe(false);
  });

  it("counts the registry cache's customers: a usage lookup of a new customer misses and keeps them, the next one hits", async () => {
    const figures = async () => {
      const text = await (await fetch(`${job!.base}/metrics`)).text();
      const figure = (name: string) => {
        const found = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
        if (found === null) throw new Error(`${name} is not exported as a whole number`);
        return Number(found[1]);
      };
      return { hits: figure('tally_balance_registry_cache_hits_total'), misses: figure('tally_balance_registry_cache_misses_total'), customers: figure('tally_balance_registry_cache_customers') };
    };
    const customer = `metrics-${randomUUID()}`;
    const lookUpCustomer = async () => {
      const response = await fetch(`${job!.base}/v1/customers/${customer}/usage-events/evt-1`, { headers: { authorization: 'Bearer metrics-endpoint-test-key' } });
      expect(response.status).toBe(200);
    };
    const before = await figures();
    await lookUpCustomer();
    const missed = await figures();
    expect(missed.misses).toBe(before.misses + 1);
    expect(missed.customers).toBe(before.customers + 1);
    await lookUpCustomer();
    expect((await figures()).hits).toBe(missed.hits + 1);
  });
});
