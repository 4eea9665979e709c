import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKey, ApiScope } from './apiScopes';

const BEARER = /^Bearer ([!-~]+)$/;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Who a request is, as far as its Authorization header says. */
export type Principal =
  /** `keyId` is a prefix of the key's SHA-256: what logs and rate-limit counters name, never the key. */
  | { readonly kind: 'key'; readonly keyId: string; readonly scopes: readonly ApiScope[] }
  | { readonly kind: 'anonymous'; readonly reason: string };

export interface BearerAuth {
  authenticate(authorization: string | undefined): Principal;
}

/**
 * Checks `Authorization: Bearer <key>` against the configured keys. Keys are compared as
 * SHA-256 digests with timingSafeEqual, and against every key without stopping at a match, so
 * neither a key's content nor its length nor its place in the list shows in the response time.
 * A plain string is an `admin` key.
 */
export function createBearerAuth(apiKeys: ReadonlyArray<string | ApiKey>): BearerAuth {
  const keys = apiKeys.map((entry) => (typeof entry === 'string' ? { key: entry, scopes: ['admin'] as const } : entry));
  if (keys.length === 0 || keys.some(({ key, scopes }) => !BEARER.test(`Bearer ${key}`) || scopes.length === 0)) {
    throw new Error('apiKeys must be a non-empty list of keys of printable ASCII without spaces, each with at least one scope');
  }
  const candidates = keys.map(({ key, scopes }) => {
    const hash = digest(key);
    return { hash, principal: { kind: 'key', keyId: hash.toString('hex').slice(0, 12), scopes } as const };
  });

  return {
    authenticate(header) {
      const match = header === undefined ? null : BEARER.exec(header);
      if (match === null) {
        return {
          kind: 'anonymous',
          reason: header === undefined ? 'the Authorization header is missing' : 'the Authorization header must be "Bearer <key>"',
        };
      }
      const presented = digest(match[1]!);
      let found: Principal | undefined;
      for (const candidate of candidates) {
        if (timingSafeEqual(presented, candidate.hash)) found = candidate.principal;
      }
      return found ?? { kind: 'anonymous', reason: 'the API key is not valid' };
    },
  };
}
