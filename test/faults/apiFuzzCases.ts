import type { RawRequest } from './rawHttp';
import type { SeededRandom } from './seededRandom';

/** One operation of the OpenAPI document, as far as the fuzz run needs it. */
export interface RouteSpec {
  readonly method: string;
  /** OpenAPI template, e.g. /v1/credit-balances/{balanceId}. */
  readonly path: string;
  readonly pathParams: ReadonlyArray<{ readonly name: string; readonly pattern: boolean }>;
  readonly hasQuery: boolean;
  readonly hasBody: boolean;
  readonly hasIdempotencyKey: boolean;
  /** The scope the route declares (`x-tally-scope`); `public` routes take no key in a header. */
  readonly scope: string | undefined;
}

export interface FuzzCase {
  readonly kind: string;
  readonly route: string;
  readonly request: RawRequest;
  /** A body beyond the size limit: the server may answer 413 and reset the connection mid-upload. */
  readonly mayReset?: boolean;
}

interface OpenApiOperation {
  readonly parameters?: ReadonlyArray<{ readonly in: string; readonly name: string; readonly schema?: { readonly pattern?: string } }>;
  readonly requestBody?: unknown;
  readonly 'x-tally-scope'?: string;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every operation the API documents at /docs/json. */
export function routesOf(document: { paths: Readonly<Record<string, Partial<Record<string, OpenApiOperation>>>> }): RouteSpec[] {
  const routes: RouteSpec[] = [];
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = operations[method];
      if (operation === undefined) continue;
      const parameters = operation.parameters ?? [];
      routes.push({
        method: method.toUpperCase(),
        path,
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => ({ name: p.name, pattern: p.schema?.pattern !== undefined })),
        hasQuery: parameters.some((p) => p.in === 'query'),
        hasBody: operation.requestBody !== undefined,
        hasIdempotencyKey: parameters.some((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key'),
        scope: operation['x-tally-scope'],
      });
    }
  }
  return routes;
}

/** Path segments (already percent-encoded where meant) that no identifier pattern admits. */
const BAD_IDENTIFIERS = [
  '..', '.', '...', '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f%2e%2e%2f', '%2e%2e', '..%5c..%5cwindows%5cwin.ini', '%00', 'a%00b',
  '%zz', '%', '%C0%AE%C0%AE%2F', '%F0%9F%94%A5', '%27%20OR%201%3D1--', '%2A', '~root', '%20', '%0d%0aX-Injected:%201',
  '%3Cscript%3Ealert(1)%3C%2Fscript%3E', '__proto__', '-leading-dash', '%252e%252e%252f', '%E2%80%AE', '....%2F%2F', 'a%2Fb',
  'x'.repeat(129), 'x'.repeat(5000), '%ED%A0%80',
];
/** For free-text ids (a customer id is any 1-256 characters): too long, or not decodable. */
const BAD_TEXT_IDS = ['x'.repeat(257), 'y'.repeat(6000), '%zz', '%', 'a%2', '%ED%A0%80', '%C0'];

const deepJson = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** [content-type, body, may reset]: none is a valid body for any route. */
const BAD_BODIES: ReadonlyArray<readonly [string | undefined, string | Buffer, boolean?]> = [
  ['application/json', '{'],
  ['application/json', '{"credits": "1",}'],
  ['application/json', 'null'],
  ['application/json', '[]'],
  ['application/json', '"credits"'],
  ['application/json', '123'],
  ['application/json', 'true'],
  ['application/json', ''],
  ['application/json', '{"__proto__": {"credits": "1"}}'],
  ['application/json', '{"constructor": {"prototype": {"admin": true}}}'],
  ['application/json', '{}'],
  ['application/json', '{"unexpected": 1}'],
  ['application/json', '{"credits": 10}'],
  ['application/json', '{"credits": null}'],
  ['application/json', '{"credits": ["1"]}'],
  ['application/json', '{"credits": {"$gt": ""}}'],
  ['application/json', '{"credits": "-5"}'],
  ['application/json', '{"credits": "1e3"}'],
  ['application/json', '{"credits": "NaN"}'],
  ['application/json', '{"credits": "0"}'],
  ['application/json', '{"credits": "0.0000001"}'],
  ['application/json', '{"credits": "12345678901234567"}'],
  ['application/json', '{"credits": "1", "reason": 5}'],
  ['application/json', `{"credits": "1", "reason": "${'r'.repeat(600)}"}`],
  ['application/json', '{"name": 123}'],
  ['application/json', '{"name": ""}'],
  ['application/json', '{"productId": ["compute"]}'],
  ['application/json', '{"productId": "../../etc/passwd"}'],
  ['application/json', '{"productId": "compute", "startingBalance": "-1"}'],
  ['application/json', '{"consumption": "all"}'],
  ['application/json', '{"bundleId": null, "quantity": -1}'],
  ['application/json', '{"quantity": 1.5}'],
  ['application/json', '{"customerId": {}, "planId": 1}'],
  ['application/json', deepJson(5000)],
  ['application/json', `{"name": "${'n'.repeat(70 * 1024)}"}`, true],
  ['application/json', Buffer.alloc(5 * 1024 * 1024, 0x20), true],
  ['application/json', Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  // Declared and encoded as UTF-16: the API reads JSON only as UTF-8 (ASCII declared as UTF-16 it accepts, as most servers do).
  ['application/json; charset=utf-16', Buffer.from('{"credits": "1"}', 'utf16le')],
  ['text/plain', '{"credits": "1"}'],
  ['application/x-www-form-urlencoded', 'credits=1'],
  ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="credits"\r\n\r\n1\r\n--x--'],
  ['application/xml', '<credits>1</credits>'],
  [undefined, '{"credits": "1"}'],
];

const BAD_QUERIES = [
  '?limit=abc', '?limit=0', '?limit=501', '?limit=1&limit=2', '?before=-1', '?before=1234567890123456789012', '?consistent=yes',
  '?consistent=true&consistent=false', '?consistent[]=true', '?unknown=1', '?__proto__[x]=1', '?limit=%00', '?limit=1e2', '?limit=%zz',
  '?constructor[prototype][x]=1', `?limit=${'9'.repeat(5000)}`,
];

const BAD_IDEMPOTENCY_KEYS = ['', 'has space', 'k'.repeat(300), '\u00e9t\u00e9', '\t', 'a\u0080b'];

/** Authorization headers that must all be refused; `key` is the valid one. */
export function badAuthorizations(key: string): ReadonlyArray<ReadonlyArray<readonly [string, string]>> {
  const flipped = `${key.slice(0, -1)}${key.endsWith('a') ? 'b' : 'a'}`;
  return [
    [],
    [['Authorization', 'Bearer']],
    [['Authorization', 'Bearer ']],
    [['Authorization', 'Basic dXNlcjpwYXNzd29yZA==']],
    [['Authorization', `bearer ${key}`]],
    [['Authorization', `Bearer ${key}x`]],
    [['Authorization', `Bearer ${flipped}`]],
    [['Authorization', `Bearer ${key.slice(0, -1)}`]],
    [['Authorization', `Bearer ${'a'.repeat(8000)}`]],
    [['Authorization', `Bearer ${key},Bearer ${key}`]],
    [['Authorization', `Token ${key}`]],
    [['Authorization', key]],
    [['Authorization', `Bearer\t${key}`]],
    [['Authorization', `Bearer  ${key}`]],
    [['Authorization', `Bearer ${key}\u00e9`]],
    [['X-Api-Key', key]],
    [['Cookie', `authorization=Bearer ${key}`]],
    // Node keeps the first of two Authorization headers: the invalid one must decide.
    [['Authorization', 'Bearer wrong-key-0123456789'], ['Authorization', `Bearer ${key}`]],
  ];
}

export interface FuzzContext {
  readonly random: SeededRandom;
  readonly routes: readonly RouteSpec[];
  readonly apiKey: string;
  /** Real ids by parameter name (balanceId, productId, customerId), so that only the malformation is wrong. */
  readonly realIds: Readonly<Record<string, string>>;
}

/**
 * One malformed or hostile request against a documented route: at least one thing about it is
 * invalid (its key, its method, an id, its query, its body or its Idempotency-Key), so the only
 * right answers are 4xx.
 */
export function createFuzzCase({ random, routes, apiKey, realIds }: FuzzContext, n: number): FuzzCase {
  const route = random.pick(routes);
  const options = ['bad-auth', 'wrong-method'];
  if (route.pathParams.length > 0) options.push('bad-id');
  if (route.hasQuery) options.push('bad-query');
  if (route.hasBody) options.push('bad-body');
  if (route.hasIdempotencyKey) options.push('bad-idempotency-key');
  const kind = random.pick(options);
  const target = kind === 'bad-id' ? random.pick(route.pathParams).name : undefined;

  let path = route.path;
  for (const { name, pattern } of route.pathParams) {
    const value =
      name === target ? random.pick(pattern ? BAD_IDENTIFIERS : BAD_TEXT_IDS) : random.chance(0.5) && realIds[name] !== undefined ? realIds[name]! : `fuzz-missing-${n}`;
    path = path.replace(`{${name}}`, value);
  }
  if (kind === 'bad-query' || (route.hasQuery && random.chance(0.2))) path += random.pick(BAD_QUERIES);

  const headers: Array<readonly [string, string]> = kind === 'bad-auth' ? [...random.pick(badAuthorizations(apiKey))] : [['Authorization', `Bearer ${apiKey}`]];
  if (kind === 'bad-idempotency-key') headers.push(['Idempotency-Key', random.pick(BAD_IDEMPOTENCY_KEYS)]);
  let body: string | Buffer | undefined;
  let mayReset = false;
  // A body route gets an invalid body whatever else is wrong, so no request is valid by chance.
  if (route.hasBody || kind === 'bad-body') {
    const [contentType, payload, large] = random.pick(BAD_BODIES);
    if (contentType !== undefined) headers.push(['Content-Type', contentType]);
    body = payload;
    mayReset = large === true;
  }
  let method = route.method;
  if (kind === 'wrong-method') {
    const taken = new Set(routes.filter((other) => other.path === route.path).map((other) => other.method));
    method = random.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'FOO'].filter((candidate) => !taken.has(candidate)));
  }
  return { kind, route: `${route.method} ${route.path}`, request: { method, path, headers, ...(body === undefined ? {} : { body }) }, mayReset };
}

/** Requests only a hand-written client sends: broken framing, oversized heads, smuggling shapes. */
export function rawProtocolCases(apiKey: string): FuzzCase[] {
  const auth = `Authorization: Bearer ${apiKey}\r\n`;
  const cases: Array<[string, string | Buffer]> = [
    ['garbage', 'GARBAGE\r\n\r\n'],
    ['binary', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['space-in-path', `GET /v1/credit-balances/a b HTTP/1.1\r\nHost: x\r\n${auth}\r\n`],
    ['nul-in-path', `GET /v1/credit-balances/a\u0000b HTTP/1.1\r\nHost: x\r\n${auth}\r\n`],
    ['huge-header', `GET /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    ['many-headers', `GET /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
    ['bad-header-name', `GET /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}Bad Header: x\r\n\r\n`],
    ['cl-and-te', `POST /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['two-content-lengths', `POST /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}`],
    ['bad-content-length', `POST /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: abc\r\n\r\n{}`],
    ['bad-chunk', `POST /v1/credit-products HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`],
    ['obs-fold', `GET /v1/credit-products HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n`],
    ['absolute-uri', `GET http://evil.example/v1/credit-products HTTP/1.1\r\nHost: x\r\n\r\n`],
    ['no-host', `GET /v1/credit-products HTTP/1.1\r\n\r\n`],
    ['lf-only', `GET /v1/credit-products HTTP/1.1\nHost: x\n\n`],
  ];
  return cases.map(([kind, raw]) => ({ kind: `raw-${kind}`, route: 'raw', request: { method: 'RAW', path: '', raw } }));
}

/**
 * Requests whose shape the schemas accept but whose text PostgreSQL cannot store (U+0000): the
 * API must refuse them as bad input, not fail on the way to the database.
 */
export function unstorableTextCases(apiKey: string, realIds: Readonly<Record<string, string>>): FuzzCase[] {
  const headers: Array<readonly [string, string]> = [['Authorization', `Bearer ${apiKey}`], ['Content-Type', 'application/json']];
  const balance = realIds.balanceId ?? 'fuzz-missing';
  const nul = '\u0000';
  const cases: Array<[string, string, string, unknown]> = [
    ['nul-customer-id', 'POST', '/v1/customers/nul%00customer/credit-balances', { productId: realIds.productId }],
    ['nul-balance-name', 'POST', `/v1/customers/nul-name-customer/credit-balances`, { productId: realIds.productId, name: `a${nul}b` }],
    ['nul-product-name', 'POST', '/v1/credit-products', { id: 'nul-product', name: `a${nul}b` }],
    ['nul-product-description', 'POST', '/v1/credit-products', { id: 'nul-product-2', name: 'n', description: `a${nul}b` }],
    ['nul-rule-event', 'POST', '/v1/credit-products', { id: 'nul-product-3', name: 'n', consumption: [{ event: `a${nul}`, credits: '1' }] }],
    ['nul-top-up-reason', 'POST', `/v1/credit-balances/${balance}/top-ups`, { credits: '1', reason: `a${nul}b` }],
    ['nul-deduction-reason', 'POST', `/v1/credit-balances/${balance}/deductions`, { credits: '1', reason: `a${nul}b` }],
    ['nul-rename', 'PATCH', `/v1/credit-balances/${balance}`, { name: `a${nul}b` }],
  ];
  return cases.map(([kind, method, path, body]) => ({
    kind,
    route: `${method} ${path}`,
    request: { method, path, headers: [...headers, ['Idempotency-Key', `${kind}-key`]], body: JSON.stringify(body) },
  }));
}
