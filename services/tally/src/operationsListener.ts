import { healthRoutes, metricsRoutes, type HealthCheck } from '@tally/api';
import type { MetricsRegistry } from '@tally/metrics';
import type { StalledPartition } from '@tally/metering';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

interface OperationsListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  readonly health: HealthCheck;
  readonly healthTimeoutMs: number;
  readonly healthIntervalMs: number;
  readonly stalledPartitions: () => readonly StalledPartition[];
  /** The API's own bounds on a connection, so a slow scraper holds a socket no longer here. */
  readonly connectionTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/**
 * GET /health and GET /metrics for a process without the api role (a consumer scaled out, a
 * relay): the API's own two routes, alone on a server of their own, so every process can be
 * scraped and probed. Like the API's, they take no key; /health then answers up or down only.
 */
export async function listenForOperations(options: OperationsListenerOptions): Promise<FastifyInstance> {
  const logger = options.logger.child({ module: 'operations-listener' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    connectionTimeout: options.connectionTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
  });
  await app.register(healthRoutes, {
    check: options.health,
    timeoutMs: options.healthTimeoutMs,
    intervalMs: options.healthIntervalMs,
    stalledPartitions: options.stalledPartitions,
    logger: options.logger.child({ module: 'health' }),
  });
  await app.register(metricsRoutes, { registry: options.metrics });
  await app.listen({ host: options.host, port: options.port });
  return app;
}
