import { TallyError } from '@tally/domain';
import type { Redis } from 'ioredis';

/**
 * The web credentials that ended before they expire: console sessions signed out (by id) and the
 * portal links of a customer revoked (all those issued up to an instant). The tokens are
 * stateless JWTs, so this is the one state that can refuse a valid signature. Kept in Redis,
 * shared by every API process and surviving their restarts, each entry only as long as a token it
 * concerns can still be valid; in this process's memory when no Redis is given (tests, one process).
 */
export interface TokenRevocations {
  /** Refuses the session from now until `expiresAt`, after which its token is refused anyway. */
  revokeSession(sessionId: string, expiresAt: Date, now: Date): Promise<void>;
  isSessionRevoked(sessionId: string): Promise<boolean>;
  /** Voids the customer's portal links issued at or before `at`; links issued later admit. */
  revokePortalLinks(customerId: string, at: Date): Promise<void>;
  /** The instant up to which the customer's links are void; undefined when none were revoked (or all those have expired). */
  portalLinksRevokedAt(customerId: string): Promise<Date | undefined>;
}

/**
 * Whether a token was revoked could not be told: the request is refused (a revoked credential
 * must not slip through an outage) as a failure a retry may get past, 503.
 */
export class TokenRevocationsUnavailableError extends TallyError {
  readonly code = 'sign_in_state_unavailable';
  readonly retriable = true;
}

interface RedisTokenRevocationsOptions {
  readonly redis: Redis;
  /** Prefix of the Redis keys, e.g. `tally:web:`. */
  readonly keyPrefix: string;
  /** How long a portal link lasts: a revocation is kept that long, then every link it voids has expired. */
  readonly portalTtlMs: number;
}

// Keeps the later of two revocations that race (two API processes, two clicks).
const REVOKE_UP_TO = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1`;

export function createRedisTokenRevocations({ redis, keyPrefix, portalTtlMs }: RedisTokenRevocationsOptions): TokenRevocations {
  const sessionKey = (sessionId: string) => `${keyPrefix}session-revoked:${sessionId}`;
  const portalKey = (customerId: string) => `${keyPrefix}portal-revoked:${customerId}`;
  const unavailable = (what: string) => (error: unknown) => {
    throw new TokenRevocationsUnavailableError(`${what} could not be checked; retry shortly`, { cause: error });
  };
  return {
    async revokeSession(sessionId, expiresAt, now) {
      const ttlMs = Math.max(1, expiresAt.getTime() - now.getTime());
      await redis.set(sessionKey(sessionId), '1', 'PX', ttlMs).catch(unavailable('signing out'));
    },
    async isSessionRevoked(sessionId) {
      return (await redis.exists(sessionKey(sessionId)).catch(unavailable('the console session'))) === 1;
    },
    async revokePortalLinks(customerId, at) {
      await redis.eval(REVOKE_UP_TO, 1, portalKey(customerId), String(at.getTime()), String(portalTtlMs)).catch(unavailable("revoking the customer's portal links"));
    },
    async portalLinksRevokedAt(customerId) {
      const value = await redis.get(portalKey(customerId)).catch(unavailable('the portal link'));
      return value === null ? undefined : new Date(Number(value));
    },
  };
}

/** The same in this process's memory, for a single API process without Redis (tests). */
export function createMemoryTokenRevocations(): TokenRevocations {
  const sessions = new Map<string, number>();
  const portals = new Map<string, number>();
  return {
    async revokeSession(sessionId, expiresAt, now) {
      // Those past their expiry are refused anyway: kept no longer, as Redis keeps them.
      for (const [id, until] of sessions) if (until <= now.getTime()) sessions.delete(id);
      sessions.set(sessionId, expiresAt.getTime());
    },
    async isSessionRevoked(sessionId) {
      return sessions.has(sessionId);
    },
    async revokePortalLinks(customerId, at) {
      portals.set(customerId, Math.max(portals.get(customerId) ?? 0, at.getTime()));
    },
    async portalLinksRevokedAt(customerId) {
      const at = portals.get(customerId);
      return at === undefined ? undefined : new Date(at);
    },
  };
}
