import type { FastifyInstance } from 'fastify';

export type HealthCheck = () => Promise<Record<string, 'up' | 'down'>>;

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
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['up', 'down'] },
    checks: { type: 'object', additionalProperties: { type: 'string', enum: ['up', 'down'] } },
    stalledPartitions: {
      type: 'array',
      description: 'Present when a usage partition waits at a record batch that cannot be decoded; `tally skip-batch` moves past it',
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

/**
 * Each dependency's state, for load balancers and people: 200 when all are up, 503 otherwise.
 * The check is bounded in time, so a hung dependency reads as down rather than hanging the probe.
 */
export function health(
  app: FastifyInstance,
  { check, timeoutMs, stalledPartitions }: { check: HealthCheck; timeoutMs: number; stalledPartitions?: () => readonly StalledPartitionView[] },
): void {
  const logger = app.log.child({ module: 'health' });

  app.get(
    '/health',
    {
      schema: {
        tags: ['operations'],
        summary: "Each dependency's state",
        security: [],
        response: { 200: healthBody, 503: healthBody },
      },
    },
    async (_request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`health check took longer than ${timeoutMs} ms`)), timeoutMs);
      });
      let checks: Record<string, 'up' | 'down'>;
      try {
        checks = await Promise.race([check(), timeout]);
      } catch (error) {
        logger.warn({ err: error }, 'health check failed');
        checks = { health: 'down' };
      } finally {
        clearTimeout(timer);
      }
      // A stalled partition meters nothing until an operator acts: the process is not healthy.
      const stalled = stalledPartitions?.() ?? [];
      if (stalled.length > 0) checks = { ...checks, usagePartitions: 'down' };
      const up = Object.values(checks).every((state) => state === 'up');
      return reply
        .code(up ? 200 : 503)
        .send({ status: up ? 'up' : 'down', checks, ...(stalled.length > 0 ? { stalledPartitions: stalled } : {}) });
    },
  );
}
