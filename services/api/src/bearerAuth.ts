import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKey, ApiScope } from './apiScopes';

const BEARER = /^Bearer ([!-~]+)$/;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * A key's id: the first 12 hex digits of its SHA-256. What logs, rate-limit counters, product
 * versions and ledger entries name a key by; it tells nothing of the key itself.
 */
export function keyIdOf(key: string): string {
  return digest(key).toString('hex').slice(0, 12);
}

/** Who a request is, as far as its Authorization header says. */
export type Principal =
  /**
   * `keyId` is a prefix of the key's SHA-256: what logs and rate-limit counters name, never the key.
   * `keyName` is the name it was configured with (`key:scopes:name`), null when it has none.
   * `session` is set when the key was presented once to open a console session and the request
   * carries the session cookie instead: its writes must send the session's CSRF token.
   */
  | { readonly kind: 'key'; readonly keyId: string; readonly keyName: string | null; readonly scopes: readonly ApiScope[]; readonly session?: ConsoleSessionOf }
  /** A portal token's holder: one customer, on the routes that declare `portal` access alone. */
  | { readonly kind: 'customer'; readonly customerId: string }
  | { readonly kind: 'anonymous'; readonly reason: string };

export type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

/** The console session a key's request came with: its CSRF token, and its id and expiry, which signing out revokes until. */
export interface ConsoleSessionOf {
  readonly csrfToken: string;
  readonly sessionId: string;
  readonly expiresAt: Date;
}

/**
 * Who a request was, for its log line: a key by id and name (never the key), a portal token's
 * holder by customer, nobody's fields otherwise.
 */
export function principalLogFields(principal: Principal | undefined): Readonly<Record<string, string | null>> {
  if (principal?.kind === 'key') return { keyId: principal.keyId, keyName: principal.keyName };
  if (principal?.kind === 'customer') return { customerId: principal.customerId };
  return {};
}

/** What a key alone can tell: a key's holder or nobody. */
export type KeyOrAnonymous = Exclude<Principal, { kind: 'customer' }>;

export interface BearerAuth {
  authenticate(authorization: string | undefined): KeyOrAnonymous;
  /**
   * The configured key with this id, as a request presenting it is admitted; undefined when none
   * is (a console session outlives no key it was opened with).
   */
  keyById(keyId: string): KeyPrincipal | undefined;
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. Keys are compared as
 * SHA-256 digests with timingSafeEqual, and against every key without stopping at a match, so
 * neither a key's content nor its length nor its place in the list shows in the response time.
 * A plain string is an `admin` key.
 */
export function createBearerAuth(apiKeys: ReadonlyArray<string | ApiKey>): BearerAuth {
  const keys = apiKeys.map((entry): ApiKey => (typeof entry === 'string' ? { key: entry, scopes: ['admin'] } : entry));
  if (keys.length === 0 || keys.some(({ key, scopes }) => !BEARER.test(`Bearer ${key}`) || scopes.length === 0)) {
    throw new Error('apiKeys must be a non-empty list of keys of printable ASCII without spaces, each with at least one scope');
  }
  const candidates = keys.map(({ key, scopes, name }) => ({
    hash: digest(key),
    principal: { kind: 'key', keyId: keyIdOf(key), keyName: name ?? null, scopes } as const,
  }));

  const byId = new Map<string, KeyPrincipal>(candidates.map(({ principal }) => [principal.keyId, principal]));
  // The verdict for each configured key, made once: a request presenting one is answered from
  // here without hashing (issue 11 §7: the digest was ~3% of a balance lookup's CPU). The keys
  // are fixed for the process's life (revoking one is a restart without it), so a verdict never
  // goes stale. Only configured keys are held, so the map cannot grow; any other header still
  // takes the digests below. A lookup's time depends on the header's length and, only if its
  // per-process seeded hash collides with a key's, on a comparison an attacker cannot aim at:
  // it tells no more than the status code does (whether the header is a valid key).
  const verdicts = new Map<string, KeyOrAnonymous>(keys.map(({ key }, index) => [`Bearer ${key}`, candidates[index]!.principal]));

  return {
    keyById: (keyId) => byId.get(keyId),
    authenticate(header) {
      const known = header === undefined ? undefined : verdicts.get(header);
      if (known !== undefined) return known;
      const match = header === undefined ? null : BEARER.exec(header);
      if (match === null) {
        return {
          kind: 'anonymous',
          reason: header === undefined ? 'the Authorization header is missing' : 'the Authorization header must be "Bearer <key>"',
        };
      }
      const presented = digest(match[1]!);
      let found: KeyOrAnonymous | undefined;
      for (const candidate of candidates) {
        if (timingSafeEqual(presented, candidate.hash)) found = candidate.principal;
      }
      return found ?? { kind: 'anonymous', reason: 'the API key is not valid' };
    },
  };
}
