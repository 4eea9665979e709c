import cookie from '@fastify/cookie';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { CatalogStore } from '@tally/catalog';
import type { AutoRecharges, BalanceRegistry, ConsumptionStore, CustomerDirectory, LedgerService, PurchaseService, StatementStarts } from '@tally/ledger';
import type { DeadLetterLog, DeadLetterReader, DeadLetterRedrives, UsagePublisher } from '@tally/metering';
import type { BalanceReadModel } from '@tally/projections';
import type { SubscriptionService } from '@tally/subscriptions';
import type { WebhookEndpointService } from '@tally/webhooks';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { registerAccessGuard, type RateLimitOptions } from './accessGuard';
import { ErrorSchema } from './apiSchemas';
import type { ApiKey } from './apiScopes';
import { balanceRoutes } from './balances/balanceRoutes';
import { createBalanceService, type BalanceServiceDeps } from './balances/balanceService';
import { guardBalanceReader } from './balances/guardBalanceReader';
import { createKeyedSerializer } from './balances/keyedSerializer';
import { CreditBalanceSchema } from './balances/balanceView';
import { createBearerAuth, principalLogFields, type Principal } from './bearerAuth';
import { catalogRoutes, CreditProductSchema } from './catalog/catalogRoutes';
import { createProductCatalog } from './catalog/productCatalog';
import { mapError } from './errorMapping';
import { entitlementRoutes } from './entitlements/entitlementRoutes';
import { createEntitlementService } from './entitlements/entitlementService';
import { holdRoutes } from './holds/holdRoutes';
import { createHoldService } from './holds/holdService';
import { HoldSchema } from './holds/holdView';
import { LedgerEntrySchema } from './ledger/ledgerEntryView';
import { createLedgerHistory } from './ledger/ledgerHistory';
import { ledgerRoutes } from './ledger/ledgerRoutes';
import { LazyChildLogger } from './lazyChildLogger';
import type { MetricsRegistry } from '@tally/metrics';
import { healthRoutes, type HealthCheck, type StalledPartitionView } from './operations/healthRoutes';
import { metricsRoutes } from './operations/metricsRoutes';
import { purchaseRoutes } from './purchases/purchaseRoutes';
import { autoRechargeRoutes } from './purchases/autoRechargeRoutes';
import { clientErrorHandler, frameworkErrorHandler, registerRequestLimits } from './requestLimits';
import { customerRoutes } from './customers/customerRoutes';
import { deadLetterRoutes } from './operations/deadLetterRoutes';
import { processorRoutes, type ReadProcessors } from './operations/processorRoutes';
import { consumptionRoutes } from './ledger/consumptionRoutes';
import { webPages } from './web/webPages';
import { CONSOLE_SCOPE, webSessionRoutes } from './web/webSessionRoutes';
import { createSignedTokens } from './web/signedTokens';
import { createMemoryTokenRevocations, createRedisTokenRevocations } from './web/tokenRevocations';
import { rejectUnstorableText } from './rejectUnstorableText';
import { declareRouteScopes } from './routeScopes';
import { declareOptionalBodies, documentOptionalBodies } from './optionalBodies';
import { planRoutes } from './subscriptions/planRoutes';
import { subscriptionRoutes } from './subscriptions/subscriptionRoutes';
import { usageRoutes } from './usage/usageRoutes';
import { addUtf8JsonParser } from './utf8JsonParser';
import { validationErrorFormatter } from './validationErrorFormatter';
import { webhookDocument } from './webhooks/webhookDocument';
import { webhookRoutes } from './webhooks/webhookRoutes';

export interface ApiDeps {
  readonly catalog: CatalogStore;
  /** Which balances exist: a customer's list is completed from the event store with those the read model lacks. */
  readonly balanceRegistry: BalanceRegistry;
  readonly ledger: LedgerService;
  /** The balance read model (the Redis projection). */
  readonly balances: BalanceReadModel;
  readonly eventStore: BalanceServiceDeps['eventStore'];
  /** Bearer keys and their scopes; at least one. A plain string is an `admin` key. */
  readonly apiKeys: ReadonlyArray<string | ApiKey>;
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
  /** Bundle purchases on a balance (@tally/ledger's purchase service). */
  readonly purchases: PurchaseService;
  /** Auto-recharge settings (GET/PUT/DELETE /v1/credit-balances/{id}/auto-recharge); served when given. */
  readonly autoRecharges?: AutoRecharges;
  /** The customer list and search (GET /v1/customers); served when given. */
  readonly customers?: CustomerDirectory;
  /** Consumption over time (GET /v1/credit-balances/{id}/consumption); served when given. */
  readonly consumption?: ConsumptionStore;
  /** Where balance statements start folding instead of the ledger's first entry; without it, each reads its ledger from the start. */
  readonly statementStarts?: StatementStarts;
  /** The most recent dead letters (GET /v1/dead-letters); served when given. */
  readonly deadLetters?: Pick<DeadLetterLog, 'recent'>;
  /** Sending dead letters back (POST /v1/dead-letters/redrives); only with `deadLetters`. */
  readonly redrives?: Omit<DeadLetterRedrives, 'stop' | 'counters'>;
  /** One dead letter whole from the dead-letter topic (GET /v1/dead-letters/{partition}/{offset}); only with `deadLetters`. */
  readonly deadLetterReader?: DeadLetterReader;
  /** The checkpointed processors of the deployment (GET /v1/processors); served when given. */
  readonly processors?: ReadProcessors;
  /** The console and the portal: their sessions, portal links and pages; served when given. */
  readonly web?: WebOptions;
  /** Webhook endpoints (@tally/webhooks): their routes are served when it is given. */
  readonly webhooks?: WebhookEndpointService;
  readonly options?: ApiOptions;
}

export interface WebOptions {
  /** Signs console sessions and portal tokens (HS256); at least 32 characters, the same in every API process. */
  readonly secret: string;
  /** How long a console session lasts; default 8 hours. */
  readonly sessionTtlMs?: number;
  /** How long a portal link admits its customer; default 1 hour. */
  readonly portalTtlMs?: number;
  /** Where @tally/web's build is; without it only the API side is served. */
  readonly pagesRoot?: string;
  /** The origin customers reach Tally at (`https://billing.example.com`), for portal links; default the request's. */
  readonly publicUrl?: string;
  /**
   * Where sessions signed out and portal links revoked are kept, shared by every API process and
   * kept across restarts; without it, in this process's memory (one process, tests).
   */
  readonly redis?: Redis;
  /** Prefix of those Redis keys; default `tally:web:`. */
  readonly redisKeyPrefix?: string;
  /** Bundles a portal token may buy in one purchase (or have auto-recharge buy each time); default 100. Keys are not limited by it. */
  readonly portalMaxPurchaseQuantity?: number;
  readonly now?: () => Date;
}

/** A leaked portal link buys no more than this at once, unless configured otherwise. */
export const DEFAULT_PORTAL_MAX_PURCHASE_QUANTITY = 100;

export interface ApiOptions {
  /** Largest request body in bytes; default 64 KiB, far above any valid request. */
  readonly bodyLimit?: number;
  /** How long `?consistent=true` waits for the read model before answering 503; default 5 s. */
  readonly consistencyTimeoutMs?: number;
  readonly consistencyPollIntervalMs?: number;
  /** Writes to one balance that may wait in this process before more are refused with 503; default 1000. */
  readonly maxPendingWritesPerBalance?: number;
  /**
   * How long a read of a balance the read model lacks may wait for its state to load before it
   * answers 503 balance_loading; default 10 s. Give it the ledger's loadBudgetMs, as writes have.
   */
  readonly balanceLoadBudgetMs?: number;
  /** Largest body of POST /v1/usage-events in bytes; default 5 MiB. */
  readonly usageBodyLimit?: number;
  /** Longest a health check may take before it counts as down; default 3 s. */
  readonly healthTimeoutMs?: number;
  /** How often /health's state is refreshed in the background; default 5 s. */
  readonly healthIntervalMs?: number;
  /** Longest the whole request (headers and body) may take to arrive; default 30 s. 0 is no limit. */
  readonly requestTimeoutMs?: number;
  /** Longest the headers may take to arrive; default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Longest the body may take to arrive once the request is admitted; default 10 s. 0 is no limit. */
  readonly bodyTimeoutMs?: number;
  /** A connection with nothing sent either way for this long is closed; default 30 s. */
  readonly connectionTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long; default 5 s. */
  readonly keepAliveTimeoutMs?: number;
  /** Connections this process holds at once; more are closed as they arrive. Default 1024. */
  readonly maxConnections?: number;
  readonly rateLimit?: RateLimitOptions;
  /**
   * Which proxies' `X-Forwarded-For` to believe for the client's address (Fastify's
   * `trustProxy`: true, or addresses and CIDR ranges); default none, so the per-address limits
   * count the TCP peer. Behind a load balancer, name it, or every client shares its address.
   */
  readonly trustProxy?: boolean | readonly string[];
}

const MAX_URL_IN_MESSAGE = 200;
/** The one inline <style> swagger-ui inserts, as Chromium reports its hash. */
const SWAGGER_UI_STYLE_HASH = 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w=';

/**
 * The headers a connect-style middleware sets on every response, taken by running it once on a
 * response that only records them. Fails at start-up if the middleware fails, removes a header
 * or calls anything else: then its headers are not the same on every request.
 */
function constantHeaders(middleware: (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void): Record<string, string> {
  const headers: Record<string, string> = {};
  let outcome: unknown = 'next() was not called';
  const recorder = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    // helmet's hidePoweredBy: Fastify never sets X-Powered-By, so there is nothing to remove.
    removeHeader(name: string) {
      if (name.toLowerCase() !== 'x-powered-by') throw new Error(`the middleware removes ${name}`);
    },
  };
  middleware({} as IncomingMessage, recorder as unknown as ServerResponse, (error) => (outcome = error));
  if (outcome !== undefined) throw new Error(`the security headers could not be taken once: ${String(outcome)}`);
  return headers;
}

/**
 * The HTTP API as a Fastify instance, ready but not listening: the main job listens, tests use
 * `inject()`. Every route declares the scope a key needs (`config: { scope }`, see
 * routeScopes.ts); /health, /metrics and /docs are public, everything else takes a key.
 */
export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const options = deps.options ?? {};
  const auth = createBearerAuth(deps.apiKeys);
  // The requests' loggers are its children, at its level.
  const apiLogger = deps.logger.child({ module: 'api' });
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  // Node refuses a headers timeout longer than the request timeout; the request's is the bound.
  // Set once the access guard is registered, below; Fastify takes frameworkErrors before that.
  const guard: { authenticate?: (request: FastifyRequest) => Promise<Principal> } = {};
  const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? 10_000, requestTimeoutMs > 0 ? requestTimeoutMs : Infinity);
  const app = Fastify({
    // Timeouts on by default: a client that sends slowly, or nothing at all, holds a socket and
    // its buffers only this long (Fastify's defaults are no limit).
    requestTimeout: requestTimeoutMs,
    connectionTimeout: options.connectionTimeoutMs ?? 30_000,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
    // Node checks the request and headers timeouts every connectionsCheckingInterval (30 s by
    // default), which would let a slow client stay that much past them.
    http: { connectionsCheckingInterval: 1_000, headersTimeout: headersTimeoutMs },
    // Errors raised before a route is found, in the same `{ error, message }` contract.
    // The access guard's authentication once it is registered (below): a portal token or a
    // console session is told what a key is told.
    frameworkErrors: frameworkErrorHandler((request) => (guard.authenticate !== undefined ? guard.authenticate(request) : Promise.resolve(auth.authenticate(request.headers.authorization)))),
    ...(options.trustProxy !== undefined ? { trustProxy: typeof options.trustProxy === 'object' ? [...options.trustProxy] : options.trustProxy } : {}),
    clientErrorHandler,
    // Typed as Fastify's logger interface, which pino implements, so the route modules can take
    // a plain FastifyInstance instead of one parameterised with pino's type.
    loggerInstance: apiLogger as FastifyBaseLogger,
    // Each request's child logger is made only if the request logs (LazyChildLogger).
    childLoggerFactory: LazyChildLogger.factory,
    // Fastify's own request logging writes two lines per request, which on the balance lookup
    // path cost more than the lookup; the onResponse hook below writes one line instead.
    logController: new LogController({ disableRequestLogging: true }),
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
    // Request and response types come from the routes' TypeBox schemas; validation stays with
    // Fastify's Ajv and the options above.
  }).withTypeProvider<TypeBoxTypeProvider>();
  // JSON only: a text/plain body would otherwise reach the schema as a string (a 400) instead
  // of being refused for its media type (a 415).
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  addUtf8JsonParser(app, ['application/json']);
  // Before any route is added: every route must declare its scope, which the document shows.
  declareRouteScopes(app);
  declareOptionalBodies(app);
  registerRequestLimits(app, auth, {
    bodyTimeoutMs: options.bodyTimeoutMs ?? 10_000,
    maxConnections: options.maxConnections ?? 1024,
  });
  const web = deps.web;
  const now = web?.now ?? (() => new Date());
  const portalTtlMs = web?.portalTtlMs ?? 3_600_000;
  const tokens = web === undefined ? undefined : createSignedTokens({ secret: web.secret, sessionTtlMs: web.sessionTtlMs ?? 8 * 3_600_000, portalTtlMs });
  const revocations =
    web?.redis === undefined ? createMemoryTokenRevocations() : createRedisTokenRevocations({ redis: web.redis, keyPrefix: web.redisKeyPrefix ?? 'tally:web:' });
  const portalMaxQuantity = web?.portalMaxPurchaseQuantity ?? DEFAULT_PORTAL_MAX_PURCHASE_QUANTITY;
  // Parses the console's session cookie before the access guard reads it.
  await app.register(cookie);
  guard.authenticate = await registerAccessGuard(
    app,
    auth,
    deps.logger,
    options.rateLimit,
    tokens === undefined
      ? undefined
      : { tokens, revocations, sessionScope: CONSOLE_SCOPE, now, balanceOwner: async (balanceId) => (await deps.balanceRegistry.getBalance(balanceId))?.customerId },
  );
  // helmet's middleware is built once, here: @fastify/helmet built it anew on every request,
  // parsing the CSP directives each time (about 4% of a lookup's CPU in the bench's profile),
  // for headers that are the same on every route. Same headers, same place among the hooks.
  const securityHeaders = helmet({
    // Strict for the console and portal pages to come: their own scripts, styles and images,
    // nothing inline, no frames, no plugins. /docs sets its own (swagger-ui's staticCSP).
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // An API answers JSON to programs: cross-origin isolation headers would only get in the way
    // of the pages' own fetches, and HSTS belongs to whatever terminates TLS in front.
    crossOriginEmbedderPolicy: false,
    strictTransportSecurity: false,
  });
  // And its headers are taken once, here: none of its options depends on the request (no CSP
  // nonce, no directive function), so every request gets the same values. Set as the reply's own
  // headers, they are written with Fastify's in one pass; helmet setting each on the raw
  // response per request cost ~2% of a lookup's CPU and sent Node's writeHead down its slow path.
  const securityHeaderValues = constantHeaders(securityHeaders);
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.headers(securityHeaderValues);
    done();
  });

  // The shapes several routes answer, named in the document by their $id.
  for (const schema of [ErrorSchema, CreditBalanceSchema, CreditProductSchema, LedgerEntrySchema, HoldSchema]) app.addSchema(schema);

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
      // What Tally sends to webhook endpoints, beside the routes that manage them.
      ...(deps.webhooks !== undefined ? { webhooks: webhookDocument() } : {}),
    },
    // Name the shared schemas after their $id in the document, not def-0, def-1.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) => (typeof json.$id === 'string' ? json.$id : `def-${index}`),
    },
    transformObject: (document) => ('openapiObject' in document ? documentOptionalBodies(document.openapiObject) : document.swaggerObject),
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // swagger-ui 5.34's React inserts one <style> of its own; its hash admits that one and no other
    // inline style. The browser test fails on any blocked style, so a new swagger-ui that changes it shows.
    transformStaticCSP: (header) => header.replace("style-src 'self' https:", `style-src 'self' https: '${SWAGGER_UI_STYLE_HASH}'`),
  });

  app.setErrorHandler((error, request, reply) => {
    const mapped = mapError(error);
    if (mapped.unexpected) request.log.error({ err: error }, 'request failed unexpectedly');
    else if (mapped.statusCode >= 500) request.log.warn({ err: error }, 'request failed; a retry may succeed');
    for (const [name, value] of Object.entries(mapped.headers ?? {})) reply.header(name, value);
    return reply.code(mapped.statusCode).send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.slice(0, MAX_URL_IN_MESSAGE)}` }),
  );

  const httpDuration = deps.metrics.histogram({
    name: 'tally_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
  });
  app.addHook('preValidation', rejectUnstorableText);

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: ids in paths would make a series per balance.
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe({ method: request.method, route, status: reply.statusCode }, reply.elapsedTime / 1000);
    // Writes are the audit trail and get an info line, naming who made them; reads are many and go
    // to debug, and their line is not even built unless debug is on (a lookup would pay for an
    // object nobody writes).
    const read = request.method === 'GET' || request.method === 'HEAD';
    if (!apiLogger.isLevelEnabled(read ? 'debug' : 'info')) return;
    const line = {
      method: request.method,
      route,
      url: request.url.slice(0, MAX_URL_IN_MESSAGE),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
      ...principalLogFields(request.principal),
    };
    if (read) request.log.debug(line, 'request completed');
    else request.log.info(line, 'request completed');
  });

  await app.register(healthRoutes, {
    check: deps.health,
    timeoutMs: options.healthTimeoutMs ?? 3000,
    intervalMs: options.healthIntervalMs ?? 5000,
    stalledPartitions: deps.stalledPartitions,
    logger: deps.logger.child({ module: 'health' }),
  });
  await app.register(metricsRoutes, { registry: deps.metrics });

  // Each domain's routes are a plugin over its service; the services are built here from the
  // ports the deployable hands in.
  const readModel = guardBalanceReader(deps.balances);
  const consistency = { timeoutMs: options.consistencyTimeoutMs ?? 5000, pollIntervalMs: options.consistencyPollIntervalMs ?? 20 };
  const balances = createBalanceService({
    ledger: deps.ledger,
    readModel,
    eventStore: deps.eventStore,
    balanceRegistry: deps.balanceRegistry,
    balanceWrites: createKeyedSerializer({ maxPending: options.maxPendingWritesPerBalance ?? 1000 }),
    consistency,
    ...(options.balanceLoadBudgetMs !== undefined ? { loadBudgetMs: options.balanceLoadBudgetMs } : {}),
    logger: deps.logger,
  });
  await app.register(
    async (v1) => {
      await v1.register(catalogRoutes, { products: createProductCatalog(deps.catalog) });
      await v1.register(balanceRoutes, { balances });
      await v1.register(ledgerRoutes, { history: createLedgerHistory({
          ledger: deps.ledger,
          balanceRegistry: deps.balanceRegistry,
          logger: deps.logger.child({ module: 'ledger-history' }),
          ...(deps.deadLetters !== undefined ? { deadLetters: deps.deadLetters } : {}),
          ...(deps.statementStarts !== undefined ? { statementStarts: deps.statementStarts } : {}),
        }) });
      await v1.register(purchaseRoutes, { purchases: deps.purchases, balances, portalMaxQuantity });
      if (deps.autoRecharges !== undefined) await v1.register(autoRechargeRoutes, { autoRecharges: deps.autoRecharges, balances, portalMaxQuantity });
      if (deps.customers !== undefined) await v1.register(customerRoutes, { customers: deps.customers });
      if (deps.consumption !== undefined) await v1.register(consumptionRoutes, { consumption: deps.consumption, balanceRegistry: deps.balanceRegistry, now });
      if (tokens !== undefined) await v1.register(webSessionRoutes, { auth, tokens, revocations, now, publicUrl: web?.publicUrl });
      if (deps.deadLetters !== undefined) {
        await v1.register(deadLetterRoutes, {
          deadLetters: deps.deadLetters,
          ...(deps.redrives !== undefined ? { redrives: deps.redrives } : {}),
          ...(deps.deadLetterReader !== undefined ? { letters: deps.deadLetterReader } : {}),
        });
      }
      if (deps.processors !== undefined) await v1.register(processorRoutes, { read: deps.processors });
      await v1.register(holdRoutes, { holds: createHoldService({ ledger: deps.ledger, balances }) });
      await v1.register(entitlementRoutes, {
        entitlements: createEntitlementService({ readModel, eventStore: deps.eventStore, balances, consistency }),
      });
      if (deps.usagePublisher !== undefined) {
        await v1.register(usageRoutes, { publisher: deps.usagePublisher, bodyLimit: options.usageBodyLimit });
      }
      if (deps.subscriptions !== undefined) {
        await v1.register(planRoutes, { subscriptions: deps.subscriptions });
        await v1.register(subscriptionRoutes, { subscriptions: deps.subscriptions });
      }
      if (deps.webhooks !== undefined) await v1.register(webhookRoutes, { webhooks: deps.webhooks });
    },
    { prefix: '/v1' },
  );

  if (web?.pagesRoot !== undefined) await webPages(app, { root: web.pagesRoot });

  return app;
}
