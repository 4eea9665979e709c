/**
 * What a key may do. Every route declares the one scope it needs (`config: { scope }`), which
 * the access guard enforces and the OpenAPI document shows (`x-tally-scope`, and the scope in the
 * operation's bearer security requirement).
 */
export const API_SCOPES = ['admin', 'write', 'read', 'ingest'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** `public` routes (health, metrics, the documentation) take no key. */
export type RouteScope = ApiScope | 'public';

/**
 * What holding a scope grants. `admin` is everything; `write` includes `read`, since a backend
 * that changes balances reads them back; `ingest` is usage ingestion alone, for the producers.
 */
const GRANTS: Readonly<Record<ApiScope, readonly ApiScope[]>> = {
  admin: ['admin', 'write', 'read', 'ingest'],
  write: ['write', 'read'],
  read: ['read'],
  ingest: ['ingest'],
};

export function isApiScope(text: string): text is ApiScope {
  return (API_SCOPES as readonly string[]).includes(text);
}

export function scopesGrant(held: readonly ApiScope[], needed: ApiScope): boolean {
  return held.some((scope) => GRANTS[scope].includes(needed));
}

/** A configured key and what it may do. */
export interface ApiKey {
  readonly key: string;
  readonly scopes: readonly ApiScope[];
}

/** Keys are printable ASCII without spaces; `,` `:` and `+` are the list's own separators. */
const KEY = /^[!-~]+$/;
const SEPARATORS = /[,:+]/;
const MIN_KEY_LENGTH = 16;

/**
 * `TALLY_API_KEYS`: `key[:scope[+scope...]]` entries separated by commas, e.g.
 * `k1:admin,k2:read+write,k3:ingest`. A key without scopes is `admin`, as every key was before
 * scopes existed. An unknown scope is an error, never a key: `k:reed` must not become an admin key.
 */
export function parseApiKeys(text: string): ApiKey[] {
  const entries = text.split(',').map((entry) => entry.trim()).filter(Boolean);
  return entries.map((entry, index) => {
    const colon = entry.indexOf(':');
    const key = colon === -1 ? entry : entry.slice(0, colon);
    const scopeText = colon === -1 ? 'admin' : entry.slice(colon + 1);
    if (!KEY.test(key) || SEPARATORS.test(key)) {
      throw new Error(`key ${index + 1}: keys are printable ASCII without spaces, ",", ":" or "+"`);
    }
    if (key.length < MIN_KEY_LENGTH) throw new Error(`key ${index + 1}: every key must be at least ${MIN_KEY_LENGTH} characters`);
    const scopes = scopeText.split('+').map((scope) => scope.trim());
    const unknown = scopes.filter((scope) => !isApiScope(scope));
    if (unknown.length > 0) {
      throw new Error(`key ${index + 1}: unknown scope(s) ${unknown.map((scope) => `"${scope}"`).join(', ')}; use ${API_SCOPES.join(', ')}`);
    }
    return { key, scopes: [...new Set(scopes as ApiScope[])] };
  });
}
