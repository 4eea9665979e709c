import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { isApiScope, type ApiScope } from '../apiScopes';

/**
 * Tokens Tally signs for its own web interfaces, as JWTs (HS256, by `jose`: no crypto written
 * here). Two kinds, told apart by their audience so that one is never accepted as the other:
 *
 * - a console session: the key's id and scopes, and a CSRF token the console sends back on
 *   writes (double submit), carried in an HttpOnly cookie;
 * - a portal token: one customer, for the customer portal, carried as a bearer token.
 *
 * Both expire. A session names the key it was opened with by id, so removing that key from the
 * configuration ends its sessions too (the access guard checks the id is still configured). Both
 * can also end early (tokenRevocations.ts): a session by its id (`jti`), signed out; a customer's
 * portal links by the customer's revocation epoch they were issued at (`rev`), which revoking
 * raises: by the order of issuing and revoking in Redis, not by any process's clock.
 */
export interface ConsoleSessionClaims {
  /** The session's own id, which signing out revokes. */
  readonly sessionId: string;
  readonly keyId: string;
  readonly scopes: readonly ApiScope[];
  readonly csrfToken: string;
  readonly expiresAt: Date;
}

export interface PortalClaims {
  readonly customerId: string;
  /**
   * The customer's revocation epoch when the link was issued: a revocation since has raised the
   * customer's past it. undefined for a link issued before links carried one (see tokenRevocations.ts).
   */
  readonly revocationEpoch: number | undefined;
  /** To the millisecond, by the issuing process's clock: what decides only for a link without an epoch. */
  readonly issuedAt: Date;
  readonly expiresAt: Date;
}

export interface SignedTokens {
  openSession(key: { keyId: string; scopes: readonly ApiScope[] }, now: Date): Promise<{ token: string; claims: ConsoleSessionClaims }>;
  /** undefined for anything but an unexpired session token signed with this secret. */
  verifySession(token: string, now: Date): Promise<ConsoleSessionClaims | undefined>;
  issuePortalToken(customerId: string, revocationEpoch: number, now: Date): Promise<{ token: string; claims: PortalClaims }>;
  verifyPortalToken(token: string, now: Date): Promise<PortalClaims | undefined>;
}

interface SignedTokenOptions {
  /** At least 32 bytes of secret (HS256's key size); every API process must share it. */
  readonly secret: string;
  readonly sessionTtlMs: number;
  readonly portalTtlMs: number;
}

const ISSUER = 'tally';
const SESSION_AUDIENCE = 'tally-console';
const PORTAL_AUDIENCE = 'tally-portal';
const MIN_SECRET_LENGTH = 32;
/**
 * A portal token's issue instant in milliseconds (`iat` counts whole seconds): still signed, so that
 * an API process of the version before revocation epochs, while a deployment replaces it, revokes
 * by it as it did; read here only for a token without an epoch.
 */
const ISSUED_AT_MS = 'iat_ms';
/** A portal token's revocation epoch, see PortalClaims. */
const REVOCATION_EPOCH = 'rev';

/** A JWT is three base64url parts: what the access guard tries as a portal token when no key matches. */
export const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function createSignedTokens(options: SignedTokenOptions): SignedTokens {
  if (options.secret.length < MIN_SECRET_LENGTH) throw new Error(`the session secret must be at least ${MIN_SECRET_LENGTH} characters`);
  if (!(options.sessionTtlMs > 0) || !(options.portalTtlMs > 0)) throw new Error('token lifetimes must be positive');
  const key = new TextEncoder().encode(options.secret);
  const seconds = (date: Date) => Math.floor(date.getTime() / 1000);

  async function sign(claims: Record<string, unknown>, subject: string, audience: string, now: Date, ttlMs: number) {
    const expiresAt = new Date(now.getTime() + ttlMs);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience(audience)
      .setSubject(subject)
      .setIssuedAt(seconds(now))
      .setExpirationTime(seconds(expiresAt))
      .sign(key);
    return { token, expiresAt: new Date(seconds(expiresAt) * 1000) };
  }

  async function verify(token: string, audience: string, now: Date) {
    if (!JWT_SHAPE.test(token)) return undefined;
    try {
      const { payload } = await jwtVerify(token, key, { issuer: ISSUER, audience, algorithms: ['HS256'], currentDate: now });
      return payload;
    } catch (error) {
      // A bad signature, an expired or foreign token is simply not a credential; anything else is a bug.
      if (error instanceof joseErrors.JOSEError) return undefined;
      throw error;
    }
  }

  return {
    async openSession({ keyId, scopes }, now) {
      const csrfToken = randomBytes(24).toString('base64url');
      const sessionId = randomBytes(16).toString('base64url');
      const { token, expiresAt } = await sign({ scopes, csrf: csrfToken, jti: sessionId }, keyId, SESSION_AUDIENCE, now, options.sessionTtlMs);
      return { token, claims: { sessionId, keyId, scopes, csrfToken, expiresAt } };
    },
    async verifySession(token, now) {
      const payload = await verify(token, SESSION_AUDIENCE, now);
      // A session without an id (signed before sessions had one) could not be signed out: not a session.
      if (payload === undefined || typeof payload.sub !== 'string' || typeof payload.csrf !== 'string' || typeof payload.exp !== 'number' || typeof payload.jti !== 'string') return undefined;
      const scopes = Array.isArray(payload.scopes) ? payload.scopes.filter((scope): scope is ApiScope => typeof scope === 'string' && isApiScope(scope)) : [];
      if (scopes.length === 0) return undefined;
      return { sessionId: payload.jti, keyId: payload.sub, scopes, csrfToken: payload.csrf, expiresAt: new Date(payload.exp * 1000) };
    },
    async issuePortalToken(customerId, revocationEpoch, now) {
      const { token, expiresAt } = await sign({ [ISSUED_AT_MS]: now.getTime(), [REVOCATION_EPOCH]: revocationEpoch }, customerId, PORTAL_AUDIENCE, now, options.portalTtlMs);
      return { token, claims: { customerId, revocationEpoch, issuedAt: now, expiresAt } };
    },
    async verifyPortalToken(token, now) {
      const payload = await verify(token, PORTAL_AUDIENCE, now);
      if (payload === undefined || typeof payload.sub !== 'string' || typeof payload.exp !== 'number') return undefined;
      // A link issued before links carried milliseconds counts from the start of its second: a
      // revocation within that second voids it too.
      const issuedAtMs = payload[ISSUED_AT_MS];
      const issuedAt = typeof issuedAtMs === 'number' && Number.isSafeInteger(issuedAtMs) ? issuedAtMs : typeof payload.iat === 'number' ? payload.iat * 1000 : 0;
      // Signed by us, so anything but a count is a bug: such a token is no credential.
      const epoch = payload[REVOCATION_EPOCH];
      if (epoch !== undefined && !(typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch >= 0)) return undefined;
      return { customerId: payload.sub, revocationEpoch: epoch, issuedAt: new Date(issuedAt), expiresAt: new Date(payload.exp * 1000) };
    },
  };
}
