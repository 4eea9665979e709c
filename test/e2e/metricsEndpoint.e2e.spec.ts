import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestSchema, freePort, stackConfig, startTallyProcess, uniqueName, type TallyProcess, type TestSchema } from '@tally/test-support';

/**
 * The main job's /metrics, as Prometheus scrapes it: Tally's own metrics and the Node runtime's,
 * each listed in docs/metrics.md.
 */
jest.setTimeout(120_000);

describe('GET /metrics of the main job', () => {
  let db: TestSchema;
  let tally: TallyProcess | undefined;
  let body: string;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'metrics_e2e' });
    const port = await freePort();
    tally = await startTallyProcess({
      env: {
        TALLY_ROLES: 'projector,api',
        TALLY_DATABASE_URL: stackConfig.testDatabaseUrl,
        TALLY_DATABASE_SCHEMA: db.schema,
        TALLY_REDIS_KEY_PREFIX: uniqueName('metrics_e2e'),
        TALLY_API_PORT: String(port),
        TALLY_API_KEYS: 'metrics-endpoint-test-key',
      },
    });
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    body = await response.text();
  });

  afterAll(async () => {
    await tally?.kill('SIGTERM');
    await db?.drop();
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
    const documented = readFileSync(path.join(__dirname, '..', '..', 'docs', 'metrics.md'), 'utf8');
    const exported = [...body.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
    expect(exported.length).toBeGreaterThan(20);
    // A braced family in the table (`nodejs_eventloop_lag_{min,max}_seconds`) counts for each of its names.
    const names = new Set(
      [...documented.matchAll(/`([a-z_]+)(?:\{([a-z0-9,]+)\})?([a-z_]*)`/g)].flatMap(([, head, family, tail]) =>
        family === undefined ? [`${head}${tail}`] : family.split(',').map((member) => `${head}${member}${tail}`),
      ),
    );
    expect(exported.filter((name) => !names.has(name))).toEqual([]);
  });
});
