import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AuthenticationRequiredError, InsufficientScopeError, RateLimitedError } from './apiErrors';
import { scopesGrant, type RouteScope } from './apiScopes';
import type { BearerAuth, Principal } from './bearerAuth';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a key needs for the route; `public` routes take none. Every route declares one. */
    scope?: RouteScope;
  }
  interface FastifyRequest {
    /** Set by the access guard before anything else runs. */
    principal: Principal | undefined;
  }
}

export interface RateLimitOptions {
  /** The window every limit counts in; default one minute. */
  readonly windowMs?: number;
  /** Requests per window per key; default 60,000 (1,000 a second). 0 turns the limits off. */
  readonly perKey?: number;
  /** Requests per window per address to the public routes (health, metrics, docs); default 1,200. */
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
}

export const DEFAULT_RATE_LIMITS = { windowMs: 60_000, perKey: 60_000, perAddress: 1_200, failedAuthPerAddress: 60 } as const;

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * The one onRequest hook that decides who may do what, before a body is read or a route's work
 * starts: authenticate, count the request against its limit, then check the route's scope.
 * Unknown routes need a valid key too (the 404 comes after it), so a client without one learns
 * nothing about which routes exist. Requests without a valid key are counted per address
 * against a much smaller limit than keyed ones: guessing keys is slow and costs nothing.
 */
export async function registerAccessGuard(app: FastifyInstance, auth: BearerAuth, options: RateLimitOptions = {}): Promise<void> {
  const limits = { ...DEFAULT_RATE_LIMITS, ...limitsGiven(options) };
  app.decorateRequest('principal', undefined);

  const enabled = limits.perKey > 0;
  const store = options.redis !== undefined ? { redis: options.redis, nameSpace: options.redisKeyPrefix ?? 'tally:rate-limit:' } : {};
  // One plugin instance per limit, each in a scope of its own: its counters are then named
  // `<prefix><name>:<who>` (a limiter derived with options would put its route in the name).
  const limiter = async (name: string, max: number, keyOf: (request: FastifyRequest) => string): Promise<Limiter> => {
    let limit: Limiter | undefined;
    await app.register(async (scope) => {
      await scope.register(rateLimit, {
        global: false,
        // Fail open: an outage of the counters' store must not take the API down with it.
        skipOnError: true,
        max,
        timeWindow: limits.windowMs,
        keyGenerator: (request) => `${name}:${keyOf(request)}`,
        ...store,
      });
      limit = scope.createRateLimit();
    });
    if (limit === undefined) throw new Error(`the ${name} rate limiter did not register`);
    return limit;
  };
  const perKey = await limiter('key', limits.perKey, (request) => (request.principal?.kind === 'key' ? request.principal.keyId : ''));
  const perAddress = await limiter('addr', limits.perAddress, (request) => request.ip);
  const failedAuth = await limiter('authfail', limits.failedAuthPerAddress, (request) => request.ip);

  async function count(limit: Limiter, request: FastifyRequest, reply: FastifyReply, who: string): Promise<void> {
    if (!enabled) return;
    const outcome = await limit(request);
    if (outcome.isAllowed) return;
    reply.header('ratelimit-limit', outcome.max).header('ratelimit-remaining', outcome.remaining).header('ratelimit-reset', outcome.ttlInSeconds);
    if (outcome.isExceeded) {
      throw new RateLimitedError(`too many requests ${who}; retry after ${outcome.ttlInSeconds} s`, Math.max(1, outcome.ttlInSeconds));
    }
  }

  app.addHook('onRequest', async (request, reply) => {
    // undefined on the not-found handler: an unknown route is treated as one needing a key.
    const scope = request.routeOptions.config.scope;
    const principal = auth.authenticate(request.headers.authorization);
    request.principal = principal;
    if (principal.kind === 'key') {
      await count(perKey, request, reply, 'with this key');
      if (scope === undefined || scope === 'public' || scopesGrant(principal.scopes, scope)) return;
      throw new InsufficientScopeError(
        `this key has the scope ${principal.scopes.join('+')}; ${request.method} ${request.routeOptions.url} needs ${scope}`,
      );
    }
    if (scope === 'public') {
      await count(perAddress, request, reply, 'from this address');
      return;
    }
    await count(failedAuth, request, reply, 'without a valid key from this address');
    throw new AuthenticationRequiredError(principal.reason);
  });
}

/** The numeric limits the caller set, leaving the defaults for the rest. */
function limitsGiven(options: RateLimitOptions): Partial<typeof DEFAULT_RATE_LIMITS> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => typeof value === 'number'));
}
