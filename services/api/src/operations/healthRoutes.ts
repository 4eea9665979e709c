import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { readonlyArray, stringEnum } from '../apiSchemas';
import { createHealthMonitor, type HealthCheck } from './healthMonitor';

export type { HealthCheck } from './healthMonitor';

/** A usage partition the metering consumer of this process stopped at (an undecodable batch). */
const stalledPartitionSchema = Type.Object({
  topic: Type.String(),
  partition: Type.Integer(),
  offset: Type.String(),
  lastOffset: Type.String(),
  codec: Type.String(),
  reason: Type.String(),
  since: Type.String(),
});

export type StalledPartitionView = Static<typeof stalledPartitionSchema>;

const upOrDown = stringEnum(['up', 'down'] as const);

const healthBody = Type.Object({
  status: upOrDown,
  checks: Type.Optional(Type.Unsafe<Record<string, 'up' | 'down'>>({ type: 'object', description: 'Only with a valid key.', additionalProperties: upOrDown })),
  checkedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the dependencies were last checked; only with a valid key.' })),
  stalledPartitions: Type.Optional(
    readonlyArray(stalledPartitionSchema,
      {
        description:
          'Only with a valid key; present when a usage partition waits at a record batch that cannot be decoded; `tally skip-batch` moves past it',
      },
    ),
  ),
});

/** GET /health's answer (200 or 503); `checks`, `checkedAt` and `stalledPartitions` only to a valid key. */
export type HealthView = Static<typeof healthBody>;

interface HealthRouteOptions {
  readonly check: HealthCheck;
  /** Longest a check may take before it counts as down. */
  readonly timeoutMs: number;
  /** How often the state is refreshed in the background. */
  readonly intervalMs: number;
  /** This process's stalled usage partitions: in-process state, read at each request. */
  readonly stalledPartitions?: (() => readonly StalledPartitionView[]) | undefined;
  readonly logger: Logger;
}

/**
 * The service's state, for load balancers and people: 200 when every dependency is up, 503
 * otherwise. Answered from the state the background monitor last took, so callers, however
 * many, cost no dependency a thing; each dependency's state is shown only to a valid key.
 */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRouteOptions> = async (app, options) => {
  const monitor = createHealthMonitor(options);
  app.addHook('onClose', () => monitor.stop());

  /**
   * Dependencies the API's answers do not need: only usage ingestion (POST /v1/usage) and the dead
   * letters go to Kafka and the registry; balances, holds, entitlements and top-ups need PostgreSQL
   * (or EventStoreDB) and Redis alone. A stalled usage partition is the consumer's, not the API's.
   */
  const NOT_NEEDED_TO_SERVE = new Set(['kafka', 'schemaRegistry']);

  /** The monitor's last state: every dependency and the stalled partitions, or (ready) only what serving needs. */
  async function answer(request: FastifyRequest, reply: FastifyReply, { ready }: { readonly ready: boolean }) {
    const state = await monitor.current();
    let checks = ready ? Object.fromEntries(Object.entries(state.checks).filter(([name]) => !NOT_NEEDED_TO_SERVE.has(name))) : state.checks;
    // A stalled partition meters nothing until an operator acts: the process is not healthy.
    const stalled = ready ? [] : (options.stalledPartitions?.() ?? []);
    if (stalled.length > 0) checks = { ...checks, usagePartitions: 'down' };
    const up = Object.values(checks).every((check) => check === 'up');
    const status = up ? ('up' as const) : ('down' as const);
    const body =
      request.principal?.kind === 'key'
        ? { status, checks, checkedAt: state.checkedAt.toISOString(), ...(stalled.length > 0 ? { stalledPartitions: stalled } : {}) }
        : { status };
    return reply.code(up ? 200 : 503).header('cache-control', 'no-store').send(body);
  }

  app.get(
    '/health',
    {
      config: { scope: 'public' },
      schema: {
        tags: ['operations'],
        operationId: 'getHealth',
        summary: "The service's state",
        description: `The whole process: every dependency it uses and its usage partitions, checked in the background every ${options.intervalMs} ms; what to alert on. A valid key (any scope) sees each one's state. A load balancer choosing API instances probes /health/ready instead.`,
        security: [],
        response: { 200: healthBody, 503: healthBody },
      },
    },
    (request, reply) => answer(request, reply, { ready: false }),
  );

  app.get(
    '/health/ready',
    {
      config: { scope: 'public' },
      schema: {
        tags: ['operations'],
        operationId: 'getReadiness',
        summary: 'Whether this instance can serve the API',
        description:
          'What serving the API needs alone: PostgreSQL (and EventStoreDB where it holds the events) and Redis, from the same background checks as /health. Kafka, the schema registry and stalled usage partitions leave it up: they stop usage ingestion and the dead letters on every instance alike, not the balance reads, holds, entitlements and top-ups. For a load balancer or a readiness probe; alert on /health.',
        security: [],
        response: { 200: healthBody, 503: healthBody },
      },
    },
    (request, reply) => answer(request, reply, { ready: true }),
  );
};
