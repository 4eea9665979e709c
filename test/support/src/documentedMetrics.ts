import { readFileSync } from 'node:fs';
import path from 'node:path';

const METRICS_DOC = path.resolve(__dirname, '..', '..', '..', 'docs', 'metrics.md');

/**
 * The metric names docs/metrics.md lists, its one list of them. A braced family in the table
 * (`nodejs_eventloop_lag_{min,max}_seconds`) counts for each of its names.
 */
export function documentedMetrics(): Set<string> {
  const documented = readFileSync(METRICS_DOC, 'utf8');
  return new Set(
    [...documented.matchAll(/`([a-z_]+)(?:\{([a-z0-9,]+)\})?([a-z_]*)`/g)].flatMap(([, head, family, tail]) =>
      family === undefined ? [`${head}${tail}`] : family.split(',').map((member) => `${head}${member}${tail}`),
    ),
  );
}
