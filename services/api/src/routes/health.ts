import type { FastifyInstance } from 'fastify';
import { createHealthMonitor, type HealthCheck } from '../healthMonitor';

export type { HealthCheck } from '../healthMonitor';

/** A usage partition the metering consumer of this process stopped at (an undecodable batch). */
export interface StalledPartitionView {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly lastOffset: string;
  readonly codec: string;
  readonly reason: string;
  readonly since: string;
}

const healthBody = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['up', 'down'] },
    checks: {
      type: 'object',
      description: 'Only with a valid key.',
      additionalProperties: { type: 'string', enum: ['up', 'down'] },
    },
    checkedAt: { type: 'string', format: 'date-time', description: 'When the dependencies were last checked; only with a valid key.' },
    stalledPartitions: {
      type: 'array',
      description:
        'Only with a valid key; present when a usage partition waits at a record batch that cannot be decoded; `tally skip-batch` moves past it',
      items: {
        type: 'object',
        properties: {
          topic: { type: 'string' },
          partition: { type: 'integer' },
          offset: { type: 'string' },
          lastOffset: { type: 'string' },
          codec: { type: 'string' },
          reason: { type: 'string' },
          since: { type: 'string' },
        },
      },
    },
  },
} as const;

export interface HealthRouteOptions {
  readonly check: HealthCheck;
  /** Longest a check may take before it counts as down. */
  readonly timeoutMs: number;
  /** How often the state is refreshed in the background. */
  readonly intervalMs: number;
  /** This process's stalled usage partitions: in-process state, read at each request. */
  readonly stalledPartitions?: (() => readonly StalledPartitionView[]) | undefined;
}

/**
 * The service's state, for load balancers and people: 200 when every dependency is up, 503
 * otherwise. Answered from the state the background monitor last took, so callers, however
 * many, cost no dependency a thing; each dependency's state is shown only to a valid key.
 */
export function health(app: FastifyInstance, options: HealthRouteOptions): void {
  const monitor = createHealthMonitor({ ...options, logger: app.log.child({ module: 'health' }) });
  app.addHook('onClose', async () => monitor.stop());

  app.get(
    '/health',
    {
      config: { scope: 'public' },
      schema: {
        tags: ['operations'],
        summary: "The service's state",
        description: `Dependencies are checked in the background every ${options.intervalMs} ms. A valid key (any scope) sees each one's state.`,
        security: [],
        response: { 200: healthBody, 503: healthBody },
      },
    },
    async (request, reply) => {
      const state = await monitor.current();
      let checks = state.checks;
      // A stalled partition meters nothing until an operator acts: the process is not healthy.
      const stalled = options.stalledPartitions?.() ?? [];
      if (stalled.length > 0) checks = { ...checks, usagePartitions: 'down' };
      const up = Object.values(checks).every((check) => check === 'up');
      const status = up ? 'up' : 'down';
      const body =
        request.principal?.kind === 'key'
          ? { status, checks, checkedAt: state.checkedAt.toISOString(), ...(stalled.length > 0 ? { stalledPartitions: stalled } : {}) }
          : { status };
      return reply.code(up ? 200 : 503).header('cache-control', 'no-store').send(body);
    },
  );
}
