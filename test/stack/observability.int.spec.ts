/**
 * What operators load into Prometheus and Grafana (infra/prometheus/prometheus.yml,
 * infra/grafana), checked without either server: promtool checks the configuration and parses
 * every query of the dashboard; the dashboard reads only documented metrics, lays its panels out
 * without overlap and takes its data source from a variable. That the main job exports each metric
 * it reads is checked against a running Tally in test/e2e/metricsEndpoint.e2e.spec.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { dashboardMetrics, dashboardQueries, documentedMetrics, metricNamesIn, readDashboard, runPromtool } from '@tally/test-support';

const ROOT = path.resolve(__dirname, '..', '..');

const promtool = (...args: string[]) => runPromtool(args);

describe('Prometheus and Grafana for operators', () => {
  jest.setTimeout(60_000);
  const dashboard = readDashboard();

  it("loads a Prometheus configuration promtool accepts, with Tally's alerting rules", async () => {
    const output = await promtool('check', 'config', path.join(ROOT, 'infra', 'prometheus', 'prometheus.yml'));
    expect(output).toContain('is valid prometheus config file syntax');
    expect(output).toContain('SUCCESS: 1 rule files found');
  });

  it('has a dashboard whose every query is PromQL that promtool parses', async () => {
    const queries = dashboardQueries(dashboard);
    expect(queries.length).toBeGreaterThan(15);
    // Each query as a recording rule, so promtool parses it; Grafana's variables as Prometheus would get them.
    const rules = queries.map((query, index) => ({
      record: `tally_dashboard:query_${index}`,
      expr: query.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*'),
    }));
    const dir = mkdtempSync(path.join(tmpdir(), 'tally-dashboard-'));
    try {
      const file = path.join(dir, 'dashboard-queries.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      expect(await promtool('check', 'rules', file)).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads only metrics docs/metrics.md lists, and names only alerts that exist', () => {
    const documented = documentedMetrics();
    const read = dashboardMetrics(dashboard);
    expect(read.length).toBeGreaterThan(15);
    expect(read.filter((name) => !documented.has(name))).toEqual([]);
    // Panels name the alerts they explain: each must be one of the alerting rules.
    const alerts = new Set([...readFileSync(path.join(ROOT, 'infra', 'prometheus', 'tally-alerts.yml'), 'utf8').matchAll(/alert: (Tally\w+)/g)].map((match) => match[1]!));
    const named = [...new Set([...JSON.stringify(dashboard).matchAll(/\b(Tally[A-Z]\w+)/g)].map((match) => match[1]!))];
    expect(named.length).toBeGreaterThanOrEqual(5);
    expect(named.filter((alert) => !alerts.has(alert))).toEqual([]);
  });

  it('lays its panels out without overlap, each titled and described, on the data source it is given', () => {
    const cells = new Set<string>();
    const ids = new Set<number>();
    for (const panel of dashboard.panels) {
      expect(ids.has(panel.id)).toBe(false);
      ids.add(panel.id);
      const { x, y, w, h } = panel.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let column = x; column < x + w; column += 1) {
        for (let line = y; line < y + h; line += 1) {
          const cell = `${column}:${line}`;
          expect({ panel: panel.title, cell, taken: cells.has(cell) }).toEqual({ panel: panel.title, cell, taken: false });
          cells.add(cell);
        }
      }
      if (panel.type === 'row') continue;
      expect(panel.title.length).toBeGreaterThan(0);
      expect(panel.description?.length ?? 0).toBeGreaterThan(0);
      expect(panel.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const target of panel.targets ?? []) expect(target.datasource).toEqual(panel.datasource);
    }
    expect(dashboard.templating.list.map((variable) => variable.name)).toEqual(['datasource', 'job']);
  });

  it('shows the share of server errors TallyApiServerErrors fires on: /health and /metrics left out', () => {
    const alert = /alert: TallyApiServerErrors\s+expr: >\s+([^\n]+)\n\s+\/ ([^\n]+)/.exec(readFileSync(path.join(ROOT, 'infra', 'prometheus', 'tally-alerts.yml'), 'utf8'));
    // Each request counter's label matchers, but the dashboard's job variable.
    const selectors = (expr: string) =>
      [...expr.matchAll(/tally_http_request_duration_seconds_count\{([^}]*)\}/g)].map((match) =>
        match[1]!.split(/,\s*/).filter((matcher) => matcher !== 'job=~"$job"').sort().join(','),
      );
    const panel = dashboard.panels.find((candidate) => candidate.description?.includes('TallyApiServerErrors'));
    const panelSelectors = selectors(panel?.targets?.map((target) => target.expr).join(' ') ?? '');
    const alertSelectors = selectors(`${alert?.[1]} ${alert?.[2]}`);
    expect(alertSelectors).toHaveLength(2);
    expect(panelSelectors).toEqual(alertSelectors);
  });

  it("shows every follower's lag and every lease docs/metrics.md lists", () => {
    const documented = [...documentedMetrics()];
    const read = (title: string) => (dashboard.panels.find((panel) => panel.title === title)?.targets ?? []).flatMap((target) => metricNamesIn(target.expr));
    // The consumer follows the usage topic, not the event store: its own panel.
    const lags = documented.filter((name) => /^tally_\w+_lag_seconds$/.test(name) && name !== 'tally_consumer_lag_seconds').sort();
    expect(lags).toContain('tally_auto_recharge_lag_seconds');
    expect(read('Behind the event store').sort()).toEqual(lags);
    expect(documented).toContain('tally_consumer_lag_seconds');
    expect(read('Behind usage (time)')).toEqual(['tally_consumer_lag_seconds']);
    const doc = readFileSync(path.join(ROOT, 'docs', 'metrics.md'), 'utf8');
    const leases = [...doc.matchAll(/^\| `(tally_\w+)` \| gauge \|[^\n]*\b1 while this process holds the [^\n]* lease/gm)].map((match) => match[1]!).sort();
    expect(leases).toContain('tally_auto_recharge_processing');
    expect(read('Lease holders').sort()).toEqual(leases);
  });
});
