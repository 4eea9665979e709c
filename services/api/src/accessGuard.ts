import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ActingKey } from '@tally/domain';
import type { LedgerActor } from '@tally/ledger';
import { timingSafeEqual } from 'node:crypto';
import { AuthenticationRequiredError, CsrfTokenInvalidError, InsufficientScopeError, RateLimitedError } from './apiErrors';
import { API_SCOPES, scopesGrant, type ApiScope, type RouteScope } from './apiScopes';
import type { BearerAuth, Principal } from './bearerAuth';
import { createSyncedRateLimitStore } from './syncedRateLimitStore';
import type { LedgerAudience } from './ledger/ledgerEntryView';
import { JWT_SHAPE, type SignedTokens } from './web/signedTokens';
import type { TokenRevocations } from './web/tokenRevocations';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a key needs for the route; `public` routes take none. Every route declares one. */
    scope?: RouteScope;
    /**
     * Whether a portal token reaches the route, and how its customer is found: `customer` from the
     * `customerId` path parameter, `balance` as the owner of the `balanceId` one. Routes without
     * it answer 403 to a portal token, whatever the customer.
     */
    portal?: PortalAccess;
  }
  interface FastifyRequest {
    /** Set by the access guard before anything else runs. */
    principal: Principal | undefined;
  }
  interface FastifyInstance {
    /**
     * Counts a key refused in a request's body (signing in to the console) against the same
     * per-address limit as a refused Authorization header: guessing keys stays slow either way.
     */
    countFailedAuthentication(request: FastifyRequest, reply: FastifyReply): Promise<void>;
  }
}

export interface RateLimitOptions {
  /** The window every limit counts in; default one minute. */
  readonly windowMs?: number;
  /** Requests per window per key; default 60,000 (1,000 a second). 0 turns the limits off. */
  readonly perKey?: number;
  /** Requests per window per address to the routes that take no key (health, metrics, docs, the console and portal pages and assets, console sign-in); default 1,200. */
  readonly perAddress?: number;
  /** Requests per window per address without a valid key to any other route; default 60. */
  readonly failedAuthPerAddress?: number;
  /**
   * Where the counters live, so the limits hold across API processes. Commands should fail fast
   * (no offline queue, a command timeout): while Redis is unreachable requests are let through
   * rather than refused. Without it the counters are in this process's memory.
   */
  readonly redis?: Redis;
  /** Prefix of the Redis keys; default `tally:rate-limit:`. */
  readonly redisKeyPrefix?: string;
  /**
   * With `redis`: how often, in ms, the per-key counts of this process are added to Redis
   * (createSyncedRateLimitStore), so a keyed request is admitted without a round trip. Unset or 0:
   * every keyed request is counted in Redis before it is admitted (exact across processes). The
   * limits of requests without a valid key and of the public routes are always counted so.
   */
  readonly syncMs?: number;
}

/**
 * How the rate limiter's own Redis connection is opened (createRedisClient's options; the URL and
 * TLS are the deployment's). It fails fast: no offline queue and a short command timeout, so
 * while Redis is away requests are let through (skipOnError) rather than held behind the counters.
 * And it auto-pipelines: every request counted in Redis runs the limiter's script (keyed ones too
 * when `syncMs` is 0; otherwise their counts go in the periodic sync's one pipeline), and the
 * scripts of one tick then share one write and one round trip instead of each paying its own
 * (issue 11 §7: the plain client's per-request write was ~10% of a balance lookup's CPU). Each
 * script still counts its request in Redis, exactly, across processes. While disconnected a pipeline's commands are
 * refused at once, as plain ones are. If Redis stalls, the commands of a tick wait for the pipeline
 * in flight (ioredis sends one at a time) and then for their own, so a request is let through
 * within about twice the command timeout.
 */
export const RATE_LIMIT_REDIS_CLIENT = { commandTimeoutMs: 250, maxRetriesPerRequest: 0, enableOfflineQueue: false, enableAutoPipelining: true } as const;

export type PortalAccess = 'customer' | 'balance';

/** The console's session cookie: HttpOnly, SameSite=Strict, set by POST /v1/console-sessions. */
export const SESSION_COOKIE = 'tally_session';
/** The header a cookie-authenticated write carries the session's CSRF token in (double submit). */
export const CSRF_HEADER = 'x-csrf-token';

/** The web interfaces' credentials beside the keys: console session cookies and portal tokens. */
export interface WebCredentials {
  readonly tokens: SignedTokens;
  /** Sessions signed out and portal links revoked before they expire. */
  readonly revocations: TokenRevocations;
  /** The scope a key needs to open a console session: a session of a key that no longer has it ends. */
  readonly sessionScope: ApiScope;
  /** The customer a balance belongs to (the balance registry), undefined for an unknown balance. */
  readonly balanceOwner: (balanceId: string) => Promise<string | undefined>;
  readonly now: () => Date;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const DEFAULT_RATE_LIMITS = { windowMs: 60_000, perKey: 60_000, perAddress: 1_200, failedAuthPerAddress: 60 } as const;

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * The one onRequest hook that decides who may do what, before a body is read or a route's work
 * starts: authenticate, count the request against its limit, then check the route's scope.
 * Unknown routes need a valid key too (the 404 comes after it), so a client without one learns
 * nothing about which routes exist. Requests without a valid key are counted per address
 * against a much smaller limit than keyed ones: guessing keys is slow and costs nothing.
 * Answers the same authentication, for what answers a request before the hook runs.
 */
export async function registerAccessGuard(
  app: FastifyInstance,
  auth: BearerAuth,
  logger: Logger,
  options: RateLimitOptions = {},
  web?: WebCredentials,
): Promise<(request: FastifyRequest) => Promise<Principal>> {
  const limits = { ...DEFAULT_RATE_LIMITS, ...limitsGiven(options) };
  app.decorateRequest('principal', undefined);

  const enabled = limits.perKey > 0;
  const nameSpace = options.redisKeyPrefix ?? 'tally:rate-limit:';
  const store = options.redis !== undefined ? { redis: options.redis, nameSpace } : {};
  // Keyed requests, the API's traffic, counted here and synchronised every syncMs (same keys).
  const synced =
    enabled && options.redis !== undefined && options.syncMs !== undefined && options.syncMs > 0
      ? createSyncedRateLimitStore({ redis: options.redis, keyPrefix: nameSpace, syncMs: options.syncMs, windowMs: limits.windowMs, logger })
      : undefined;
  if (synced !== undefined) app.addHook('onClose', () => synced.close());
  // One plugin instance per limit, each in a scope of its own: its counters are then named
  // `<prefix><name>:<who>` (a limiter derived with options would put its route in the name).
  const limiter = async (name: string, max: number, keyOf: (request: FastifyRequest) => string, counters: object = store): Promise<Limiter> => {
    let limit: Limiter | undefined;
    await app.register(async (scope) => {
      await scope.register(rateLimit, {
        global: false,
        // Fail open: an outage of the counters' store must not take the API down with it.
        skipOnError: true,
        max,
        timeWindow: limits.windowMs,
        keyGenerator: (request) => `${name}:${keyOf(request)}`,
        ...counters,
      });
      limit = scope.createRateLimit();
    });
    if (limit === undefined) throw new Error(`the ${name} rate limiter did not register`);
    return limit;
  };
  // A portal token counts against its customer's own limit, as a key does against its key's.
  const perKey = await limiter(
    'key',
    limits.perKey,
    (request) => (request.principal?.kind === 'key' ? request.principal.keyId : request.principal?.kind === 'customer' ? `customer:${request.principal.customerId}` : ''),
    synced === undefined ? store : { store: synced.Store },
  );
  const perAddress = await limiter('addr', limits.perAddress, (request) => request.ip);
  const failedAuth = await limiter('authfail', limits.failedAuthPerAddress, (request) => request.ip);

  app.decorate('countFailedAuthentication', (request: FastifyRequest, reply: FastifyReply) =>
    count(failedAuth, request, reply, 'without a valid key from this address'),
  );

  async function count(limit: Limiter, request: FastifyRequest, reply: FastifyReply, who: string): Promise<void> {
    if (!enabled) return;
    const outcome = await limit(request);
    if (outcome.isAllowed) return;
    reply.header('ratelimit-limit', outcome.max).header('ratelimit-remaining', outcome.remaining).header('ratelimit-reset', outcome.ttlInSeconds);
    if (outcome.isExceeded) {
      throw new RateLimitedError(`too many requests ${who}; retry after ${outcome.ttlInSeconds} s`, Math.max(1, outcome.ttlInSeconds));
    }
  }

  /**
   * Who the request is: a configured key in the Authorization header; else, with web credentials,
   * a portal token there, or (no Authorization header at all) the console's session cookie.
   */
  async function authenticate(request: FastifyRequest): Promise<Principal> {
    const header = request.headers.authorization;
    const byKey = auth.authenticate(header);
    if (byKey.kind === 'key' || web === undefined) return byKey;
    const bearer = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    if (bearer !== undefined && JWT_SHAPE.test(bearer)) {
      const claims = await web.tokens.verifyPortalToken(bearer, web.now());
      if (claims === undefined) return { kind: 'anonymous', reason: 'the portal token is not valid or has expired' };
      if (await web.revocations.isPortalLinkRevoked(claims)) return { kind: 'anonymous', reason: 'the portal link has been revoked; ask for a new one' };
      return { kind: 'customer', customerId: claims.customerId };
    }
    // Parsed by @fastify/cookie's hook; not yet for a URL Fastify refused before any hook ran.
    const cookies = request.cookies ?? app.parseCookie(request.headers.cookie ?? '');
    const cookie = header === undefined ? cookies[SESSION_COOKIE] : undefined;
    if (cookie === undefined || cookie === '') return byKey;
    const session = await web.tokens.verifySession(cookie, web.now());
    const key = session === undefined ? undefined : auth.keyById(session.keyId);
    if (session === undefined || key === undefined) return { kind: 'anonymous', reason: 'the session has expired; sign in again' };
    // The key as configured now: one no longer allowed to sign in ends its sessions, and a session
    // never acts with more than the key grants now (nor than it was opened with).
    if (!scopesGrant(key.scopes, web.sessionScope)) return { kind: 'anonymous', reason: `the session's key no longer has the ${web.sessionScope} scope; sign in again` };
    if (await web.revocations.isSessionRevoked(session.sessionId)) return { kind: 'anonymous', reason: 'the session has been signed out; sign in again' };
    // The name the key has now, too (a name is a label, not a grant).
    return { ...key, scopes: commonScopes(key.scopes, session.scopes), session: { csrfToken: session.csrfToken, sessionId: session.sessionId, expiresAt: session.expiresAt } };
  }

  /** A portal token reaches a route that declares `portal` access, for its own customer only. */
  async function admitsCustomer(request: FastifyRequest, customerId: string): Promise<boolean> {
    const access = request.routeOptions.config.portal;
    const params = request.params as Record<string, string | undefined>;
    if (access === 'customer') return params.customerId === customerId;
    if (access === 'balance' && web !== undefined && params.balanceId !== undefined) {
      return (await web.balanceOwner(params.balanceId)) === customerId;
    }
    return false;
  }

  app.addHook('onRequest', async (request, reply) => {
    // undefined on the not-found handler: an unknown route is treated as one needing a key.
    const scope = request.routeOptions.config.scope;
    const principal = await authenticate(request);
    request.principal = principal;
    if (principal.kind === 'key') {
      await count(perKey, request, reply, 'with this key');
      // A public route acts for nobody's session (signing in takes its key from the body, and
      // only as JSON, which no cross-site form can send): no CSRF token is asked of it.
      if (scope === 'public') return;
      // SameSite=Strict keeps the cookie off other sites' requests; the token, which only the
      // console's own pages can read, makes sure a write is the console's, whatever the browser.
      if (principal.session !== undefined && !SAFE_METHODS.has(request.method) && !sameText(request.headers[CSRF_HEADER], principal.session.csrfToken)) {
        throw new CsrfTokenInvalidError(`a write with the session cookie needs the session's CSRF token in ${CSRF_HEADER}`);
      }
      if (scope === undefined || scopesGrant(principal.scopes, scope)) return;
      throw new InsufficientScopeError(
        `this key has the scope ${principal.scopes.join('+')}; ${request.method} ${request.routeOptions.url} needs ${scope}`,
      );
    }
    if (principal.kind === 'customer') {
      await count(perKey, request, reply, 'with this portal token');
      if (scope === 'public' || (await admitsCustomer(request, principal.customerId))) return;
      // The same answer for another customer's balance and for a route portals never reach:
      // a token tells its holder nothing about what else exists.
      throw new InsufficientScopeError(`a portal token reaches only its own customer's balances, ledger, purchases and subscriptions; not ${request.method} ${request.routeOptions.url ?? request.url.slice(0, 200)}`);
    }
    if (scope === 'public') {
      await count(perAddress, request, reply, 'from this address');
      return;
    }
    await count(failedAuth, request, reply, 'without a valid key from this address');
    throw new AuthenticationRequiredError(principal.reason);
  });
  return authenticate;
}

/**
 * The key a request was admitted with, by id and name, for what records who made a change. Only
 * keys reach the routes that call it (their scope is one no portal token holds), so anything else
 * is refused as unauthenticated rather than recorded as nobody.
 */
export function actingKeyOf(request: FastifyRequest): ActingKey {
  const key = keyOf(request);
  if (key === undefined) throw new AuthenticationRequiredError('this change needs an API key or a console session');
  return key;
}

/** The key a request was admitted with; undefined for a portal token (a route both reach records the customer's change as no key's). */
export function keyOf(request: FastifyRequest): ActingKey | undefined {
  const { principal } = request;
  return principal?.kind === 'key' ? { keyId: principal.keyId, keyName: principal.keyName } : undefined;
}

/**
 * Who asked for a ledger command, as the option that stores it with the command's events: the key
 * (or console session) by id and name, or a customer on the portal (not named further: the
 * balance names its customer). Nothing for a request without either, which no such route admits.
 */
export function actorOption(request: FastifyRequest): { readonly actor?: LedgerActor } {
  const { principal } = request;
  if (principal?.kind === 'key') return { actor: { kind: 'key', keyId: principal.keyId, keyName: principal.keyName } };
  if (principal?.kind === 'customer') return { actor: { kind: 'portal' } };
  return {};
}

/** A portal token's holder reads ledger entries without the provider's key names; a key holder reads them. */
export function audienceOf(request: FastifyRequest): LedgerAudience {
  return request.principal?.kind === 'customer' ? 'customer' : 'keyHolder';
}

function sameText(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What both scope lists grant, named by the scopes of either that the other grants. */
function commonScopes(a: readonly ApiScope[], b: readonly ApiScope[]): ApiScope[] {
  const common = [...a.filter((scope) => scopesGrant(b, scope)), ...b.filter((scope) => scopesGrant(a, scope))];
  return API_SCOPES.filter((scope) => common.includes(scope));
}

/** The numeric limits the caller set, leaving the defaults for the rest. */
function limitsGiven(options: RateLimitOptions): Partial<typeof DEFAULT_RATE_LIMITS> {
  const { windowMs, perKey, perAddress, failedAuthPerAddress } = options;
  return Object.fromEntries(Object.entries({ windowMs, perKey, perAddress, failedAuthPerAddress }).filter(([, value]) => typeof value === 'number'));
}
