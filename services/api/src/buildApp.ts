import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { CatalogStore } from '@tally/catalog';
import type { EventStore } from '@tally/event-store';
import type { LedgerService } from '@tally/ledger';
import type { UsagePublisher } from '@tally/metering';
import type { BalanceReadModel } from '@tally/projections';
import { createPurchaseService, type SubscriptionService } from '@tally/subscriptions';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { sharedSchemas } from './apiSchemas';
import { createBearerAuth } from './bearerAuth';
import { mapError } from './errorMapping';
import { guardBalanceReader } from './guardBalanceReader';
import { createKeyedSerializer } from './keyedSerializer';
import type { MetricsRegistry } from './metricsRegistry';
import { creditBalanceLedger } from './routes/creditBalanceLedger';
import { creditBalances } from './routes/creditBalances';
import { creditProducts } from './routes/creditProducts';
import { customerCreditBalances } from './routes/customerCreditBalances';
import { health, type HealthCheck, type StalledPartitionView } from './routes/health';
import { metrics } from './routes/metrics';
import { plans } from './routes/plans';
import { purchases } from './routes/purchases';
import { subscriptions } from './routes/subscriptions';
import { usageEvents } from './routes/usageEvents';
import type { RouteDeps } from './routeDeps';
import { validationErrorFormatter } from './validationErrorFormatter';
import { rejectNulCharacters } from './rejectNulCharacters';

export interface ApiDeps {
  readonly catalog: CatalogStore;
  readonly ledger: LedgerService;
  /** The balance read model (the Redis projection). */
  readonly balances: BalanceReadModel;
  readonly eventStore: Pick<EventStore, 'headPosition' | 'readStream'>;
  /** Bearer keys admitted on /v1; at least one. */
  readonly apiKeys: readonly string[];
  readonly logger: Logger;
  /** Each dependency's state, for GET /health. */
  readonly health: HealthCheck;
  /** Usage partitions this process's metering consumer stopped at, shown on GET /health. */
  readonly stalledPartitions?: () => readonly StalledPartitionView[];
  /** The process's registry: the API adds its HTTP latency histogram, GET /metrics renders all of it. */
  readonly metrics: MetricsRegistry;
  /** Publishes HTTP-ingested usage to the usage topic: POST /v1/usage-events is served when it is given. */
  readonly usagePublisher?: UsagePublisher;
  /** Plans and subscriptions (@tally/subscriptions): their routes are served when it is given. */
  readonly subscriptions?: SubscriptionService;
  readonly options?: ApiOptions;
}

export interface ApiOptions {
  /** Largest request body in bytes; default 64 KiB, far above any valid request. */
  readonly bodyLimit?: number;
  /** How long `?consistent=true` waits for the read model before answering 503; default 5 s. */
  readonly consistencyTimeoutMs?: number;
  readonly consistencyPollIntervalMs?: number;
  /** Writes to one balance that may wait in this process before more are refused with 503; default 1000. */
  readonly maxPendingWritesPerBalance?: number;
  /** Largest body of POST /v1/usage-events in bytes; default 5 MiB. */
  readonly usageBodyLimit?: number;
  /** Longest a health check may take before it counts as down; default 3 s. */
  readonly healthTimeoutMs?: number;
}

const MAX_URL_IN_MESSAGE = 200;

/**
 * The HTTP API as a Fastify instance, ready but not listening: the main job listens, tests use
 * `inject()`. Every /v1 route takes a bearer key; /health, /metrics and /docs do not.
 */
export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const options = deps.options ?? {};
  const auth = createBearerAuth(deps.apiKeys);
  const app = Fastify({
    // Typed as Fastify's logger interface, which pino implements, so the route modules can take
    // a plain FastifyInstance instead of one parameterised with pino's type.
    loggerInstance: deps.logger.child({ module: 'api' }) as FastifyBaseLogger,
    // Fastify's own request logging writes two lines per request, which on the balance lookup
    // path cost more than the lookup; the onResponse hook below writes one line instead.
    disableRequestLogging: true,
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    ajv: {
      customOptions: {
        // Fastify's defaults silently drop unknown properties and turn a JSON number into the
        // string a schema asks for; an amount like 12345678901234567 would arrive rounded.
        // Unknown fields are refused and nothing is coerced (querystrings are declared as text).
        removeAdditional: false,
        coerceTypes: false,
      },
    },
    schemaErrorFormatter: validationErrorFormatter,
    // Path parameters may be customer ids of up to 256 characters, percent-encoded; Fastify's
    // default of 100 would answer longer ones 404 before the schema could say what is wrong.
    routerOptions: { maxParamLength: 1024 },
  });
  // JSON only: a text/plain body would otherwise reach the schema as a string (a 400) instead
  // of being refused for its media type (a 415).
  app.removeContentTypeParser('text/plain');

  for (const schema of sharedSchemas) app.addSchema(schema);

  await app.register(swagger, {
    openapi: {
      // 3.1: nullable fields are JSON Schema type arrays, as the validators use them.
      openapi: '3.1.0',
      info: {
        title: 'Tally API',
        version: '1',
        description: 'Credit products, customer credit balances, top-ups, deductions and the ledger. Amounts are decimal strings.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearerAuth: [] }],
    },
    // Name the shared schemas after their $id in the document, not def-0, def-1.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) => (typeof json.$id === 'string' ? json.$id : `def-${index}`),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setErrorHandler((error, request, reply) => {
    const mapped = mapError(error);
    if (mapped.unexpected) request.log.error({ err: error }, 'request failed unexpectedly');
    else if (mapped.statusCode >= 500) request.log.warn({ err: error }, 'request failed; a retry may succeed');
    if (mapped.statusCode === 503) reply.header('retry-after', '1');
    return reply.code(mapped.statusCode).send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.slice(0, MAX_URL_IN_MESSAGE)}` }),
  );

  const httpDuration = deps.metrics.histogram({
    name: 'tally_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern and status.',
    labelNames: ['method', 'route', 'status'],
  });
  app.addHook('preValidation', rejectNulCharacters);

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: ids in paths would make a series per balance.
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe({ method: request.method, route, status: reply.statusCode }, reply.elapsedTime / 1000);
    // Writes are the audit trail and get an info line; reads are many and go to debug.
    const line = { method: request.method, route, url: request.url.slice(0, MAX_URL_IN_MESSAGE), status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
    if (request.method === 'GET' || request.method === 'HEAD') request.log.debug(line, 'request completed');
    else request.log.info(line, 'request completed');
  });

  health(app, { check: deps.health, timeoutMs: options.healthTimeoutMs ?? 3000, stalledPartitions: deps.stalledPartitions });
  metrics(app, deps.metrics);

  const routeDeps: RouteDeps = {
    catalog: deps.catalog,
    ledger: deps.ledger,
    balances: guardBalanceReader(deps.balances),
    eventStore: deps.eventStore,
    balanceWrites: createKeyedSerializer({ maxPending: options.maxPendingWritesPerBalance ?? 1000 }),
    consistency: {
      timeoutMs: options.consistencyTimeoutMs ?? 5000,
      pollIntervalMs: options.consistencyPollIntervalMs ?? 20,
    },
  };
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', auth);
      creditProducts(v1, routeDeps);
      customerCreditBalances(v1, routeDeps);
      creditBalances(v1, routeDeps);
      creditBalanceLedger(v1, routeDeps);
      purchases(v1, { ...routeDeps, purchases: createPurchaseService(deps) });
      if (deps.usagePublisher !== undefined) {
        await v1.register(usageEvents, { publisher: deps.usagePublisher, bodyLimit: options.usageBodyLimit });
      }
      if (deps.subscriptions !== undefined) {
        plans(v1, { subscriptions: deps.subscriptions });
        subscriptions(v1, { subscriptions: deps.subscriptions });
      }
    },
    { prefix: '/v1' },
  );

  return app;
}
