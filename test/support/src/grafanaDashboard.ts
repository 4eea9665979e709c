import { readFileSync } from 'node:fs';
import path from 'node:path';
import { metricNamesIn } from './promtool';

/** The parts of a Grafana dashboard (infra/grafana/dashboards) the tests read. */
export interface GrafanaDashboard {
  readonly uid: string;
  readonly panels: readonly GrafanaPanel[];
  readonly templating: { readonly list: readonly { readonly name: string }[] };
}

export interface GrafanaPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource?: unknown;
  readonly targets?: readonly { readonly refId: string; readonly expr: string; readonly datasource?: unknown }[];
}

const DASHBOARD = path.resolve(__dirname, '..', '..', '..', 'infra', 'grafana', 'dashboards', 'tally-overview.json');

/** Tally's Grafana dashboard, as operators import it. */
export function readDashboard(): GrafanaDashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as GrafanaDashboard;
}

/** Every query of the dashboard, with the panel it belongs to. */
export function dashboardQueries(dashboard: GrafanaDashboard): { readonly panel: string; readonly expr: string }[] {
  return dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
}

/** The metric names the dashboard reads; a histogram's series (`_bucket`, `_count`, `_sum`) by the histogram's name. */
export function dashboardMetrics(dashboard: GrafanaDashboard): string[] {
  const names = dashboardQueries(dashboard).flatMap(({ expr }) => metricNamesIn(expr));
  return [...new Set(names)].sort();
}
