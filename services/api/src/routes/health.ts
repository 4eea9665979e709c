import type { FastifyInstance } from 'fastify';

export type HealthCheck = () => Promise<Record<string, 'up' | 'down'>>;

const healthBody = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['up', 'down'] },
    checks: { type: 'object', additionalProperties: { type: 'string', enum: ['up', 'down'] } },
  },
} as const;

/**
 * Each dependency's state, for load balancers and people: 200 when all are up, 503 otherwise.
 * The check is bounded in time, so a hung dependency reads as down rather than hanging the probe.
 */
export function health(app: FastifyInstance, { check, timeoutMs }: { check: HealthCheck; timeoutMs: number }): void {
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
      const up = Object.values(checks).every((state) => state === 'up');
      return reply.code(up ? 200 : 503).send({ status: up ? 'up' : 'down', checks });
    },
  );
}
