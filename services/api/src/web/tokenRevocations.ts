import { TallyError } from '@tally/domain';
import type { Redis } from 'ioredis';
import type { PortalClaims } from './signedTokens';

/**
 * The web credentials that ended before they expire: console sessions signed out (by id) and the
 * portal links of a customer revoked (all those issued so far). The tokens are stateless JWTs, so
 * this is the one state that can refuse a valid signature. Kept in Redis, shared by every API
 * process and surviving their restarts; in this process's memory when no Redis is given (tests,
 * one process).
 *
 * A customer's links are revoked by a counter, the customer's revocation epoch, not by an instant:
 * a link carries the epoch read when it was issued, and revoking raises it. Which came first,
 * issuing or revoking, is then the order Redis ran the GET and the INCR in, whatever the clocks of
 * the API processes that asked say (an instant from the revoking process's clock, compared with
 * one from the issuing process's, voided links issued after it or spared links issued before it
 * by as much as the clocks disagree). A link issued while the revocation runs is on one side of it.
 */
export interface TokenRevocations {
  /** Refuses the session from now until `expiresAt`, after which its token is refused anyway. */
  revokeSession(sessionId: string, expiresAt: Date, now: Date): Promise<void>;
  isSessionRevoked(sessionId: string): Promise<boolean>;
  /** The customer's revocation epoch, for a link issued now to carry: 0 until its links are first revoked. */
  portalLinkEpoch(customerId: string): Promise<number>;
  /** Voids every link of the customer issued so far; links issued afterwards admit. */
  revokePortalLinks(customerId: string): Promise<void>;
  /** Whether a revocation voided the link: one issued before the customer's latest. */
  isPortalLinkRevoked(link: PortalLink): Promise<boolean>;
}

/** What tells a portal link's revocation: its claims (signedTokens.ts). */
export type PortalLink = Pick<PortalClaims, 'customerId' | 'revocationEpoch' | 'issuedAt'>;

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
}

export function createRedisTokenRevocations({ redis, keyPrefix }: RedisTokenRevocationsOptions): TokenRevocations {
  const sessionKey = (sessionId: string) => `${keyPrefix}session-revoked:${sessionId}`;
  // Kept without expiry: one small key per customer whose links were ever revoked. A counter that
  // expired would start again at 0, and a link signed with the higher epoch before would outlive
  // the revocations after it; and when to expire it would be a clock again.
  const epochKey = (customerId: string) => `${keyPrefix}portal-epoch:${customerId}`;
  // UPGRADE: where revocations were kept before epochs, as the revoking process's instant (ms),
  // each for the portal link TTL; a process of the previous release still writes it during the
  // deployment. Read for every link (in the same MGET, no round trip more) until then: this key,
  // and its check, can go in the release after, once no such process runs.
  const legacyRevokedAtKey = (customerId: string) => `${keyPrefix}portal-revoked:${customerId}`;
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
    async portalLinkEpoch(customerId) {
      // Failing rather than guessing 0: a link with a guessed epoch could outlive a revocation.
      return epochOf(await redis.get(epochKey(customerId)).catch(unavailable("the customer's portal link revocations")));
    },
    async revokePortalLinks(customerId) {
      await redis.incr(epochKey(customerId)).catch(unavailable("revoking the customer's portal links"));
    },
    async isPortalLinkRevoked({ customerId, revocationEpoch, issuedAt }) {
      const [epoch, revokedAt] = await redis.mget(epochKey(customerId), legacyRevokedAtKey(customerId)).catch(unavailable('the portal link'));
      // UPGRADE: a link issued before epochs counts as issued at epoch 0, before any revocation
      // since (one an API process of the old version issued during the deployment too: refused
      // rather than told by clocks, the customer asks for a new link); and a revocation by the
      // previous release (before the upgrade, or by one of its processes during it) voids any link
      // issued before it, as it did, by the instants.
      return isBehind(revocationEpoch ?? 0, epochOf(epoch ?? null)) || (typeof revokedAt === 'string' && issuedAt.getTime() <= Number(revokedAt));
    },
  };
}

const epochOf = (stored: string | null): number => (stored === null ? 0 : Number(stored));

/**
 * A link is void unless it carries the customer's epoch now. Its epoch is never above the current
 * one (read, then only raised), unless Redis lost the counter: such a link is refused too, since
 * whether it was revoked can no longer be told.
 */
const isBehind = (linkEpoch: number, currentEpoch: number): boolean => linkEpoch !== currentEpoch;

/** The same in this process's memory, for a single API process without Redis (tests). */
export function createMemoryTokenRevocations(): TokenRevocations {
  const sessions = new Map<string, number>();
  const epochs = new Map<string, number>();
  return {
    async revokeSession(sessionId, expiresAt, now) {
      // Those past their expiry are refused anyway: kept no longer, as Redis keeps them.
      for (const [id, until] of sessions) if (until <= now.getTime()) sessions.delete(id);
      sessions.set(sessionId, expiresAt.getTime());
    },
    async isSessionRevoked(sessionId) {
      return sessions.has(sessionId);
    },
    async portalLinkEpoch(customerId) {
      return epochs.get(customerId) ?? 0;
    },
    async revokePortalLinks(customerId) {
      epochs.set(customerId, (epochs.get(customerId) ?? 0) + 1);
    },
    // No revocation here predates epochs (this memory does not outlive the process): a link without one counts as issued at 0.
    async isPortalLinkRevoked({ customerId, revocationEpoch }) {
      return isBehind(revocationEpoch ?? 0, epochs.get(customerId) ?? 0);
    },
  };
}
