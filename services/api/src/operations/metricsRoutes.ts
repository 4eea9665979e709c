import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { MetricsRegistry } from '@tally/metrics';

/** Prometheus text exposition of every metric registered in the process, not only the API's. */
export const metricsRoutes: FastifyPluginAsyncTypebox<{ readonly registry: MetricsRegistry }> = async (app, { registry }) => {
  app.get(
    '/metrics',
    {
      config: { scope: 'public' },
      schema: {
        tags: ['operations'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        security: [],
        response: { 200: { type: 'string', description: 'Prometheus text format 0.0.4.' } },
      },
    },
    async (_request, reply) => reply.type(registry.contentType).send(await registry.render()),
  );
};
