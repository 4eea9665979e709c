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
  /**
   * Who holds it, in words (`ops`, `billing-backend`): recorded beside the catalog changes the key
   * makes and shown in the console, where the key itself is never. Unnamed keys are told apart by
   * their id, a prefix of the key's SHA-256.
   */
  readonly name?: string;
}

/** Keys are printable ASCII without spaces; `,` `:` and `+` are the list's own separators. */
const KEY = /^[!-~]+$/;
const SEPARATORS = /[,:+]/;
const MIN_KEY_LENGTH = 16;
/** A name is a label, not a secret: it is logged and stored, so it stays short and plain. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/**
 * `TALLY_API_KEYS`: `key[:scope[+scope...][:name]]` entries separated by commas, e.g.
 * `k1:admin:ops,k2:read+write,k3:ingest`. A key without scopes is `admin`, as every key was before
 * scopes existed. An unknown scope is an error, never a key: `k:reed` must not become an admin key.
 * Names are unique, since a change recorded under a name must say which key made it. An empty
 * entry is an error too, unless every entry is empty (no key: the caller's to refuse).
 */
export function parseApiKeys(text: string): ApiKey[] {
  const entries = text.split(',').map((entry) => entry.trim());
  // Nothing at all is no key, for the caller to refuse; a blank among keys is `"$OPS,$BACKEND"` with
  // one unset, and dropping it would start with a key fewer than meant, without a word.
  if (entries.every((entry) => entry === '')) return [];
  const names = new Set<string>();
  return entries.map((entry, index) => {
    if (entry === '') throw new Error(`key ${index + 1}: an empty entry in the list (a stray comma, or a variable that was not set?)`);
    // `:` cannot occur in a key, so the parts are unambiguous: key, scopes, name.
    const [key = '', scopeText = 'admin', name, ...rest] = entry.split(':');
    if (!KEY.test(key) || SEPARATORS.test(key)) {
      throw new Error(`key ${index + 1}: keys are printable ASCII without spaces, ",", ":" or "+"`);
    }
    if (key.length < MIN_KEY_LENGTH) throw new Error(`key ${index + 1}: every key must be at least ${MIN_KEY_LENGTH} characters`);
    const scopes = scopeText.split('+').map((scope) => scope.trim());
    const unknown = scopes.filter((scope) => !isApiScope(scope));
    if (unknown.length > 0) {
      throw new Error(`key ${index + 1}: unknown scope(s) ${unknown.map((scope) => `"${scope}"`).join(', ')}; use ${API_SCOPES.join(', ')}`);
    }
    if (rest.length > 0) throw new Error(`key ${index + 1}: an entry is key:scopes:name, with no further ":"`);
    if (name !== undefined) {
      if (!KEY_NAME.test(name)) {
        throw new Error(`key ${index + 1}: a name is 1 to 64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`);
      }
      if (names.has(name)) throw new Error(`key ${index + 1}: the name "${name}" is taken by an earlier key; names are unique`);
      names.add(name);
    }
    return { key, scopes: [...new Set(scopes as ApiScope[])], ...(name !== undefined ? { name } : {}) };
  });
}
