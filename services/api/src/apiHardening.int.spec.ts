import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPostgresConsumptionStore, createPostgresCustomerDirectory, createPurchaseService } from '@tally/ledger';
import { createDeadLetterLog, createDeadLetterReader, createDeadLetterRedrives, createUsageEventDecoder } from '@tally/metering';
import { createBalanceReadModel, createRedisClient } from '@tally/projections';
import { createPostgresPlanStore, createPostgresSubscriptionStore, createSubscriptionService } from '@tally/subscriptions';
import { createTestSchema, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { scopesGrant, type ApiScope } from './apiScopes';
import { RATE_LIMIT_REDIS_CLIENT } from './accessGuard';
import { buildApp, type ApiDeps, type ApiOptions } from './buildApp';
import { createMetricsRegistry } from '@tally/metrics';
import { createSignedTokens } from './web/signedTokens';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEYS: Record<ApiScope, string> = {
  admin: 'admin-key-0123456789abcdef',
  write: 'write-key-0123456789abcdef',
  read: 'read-key-0123456789abcdef0',
  ingest: 'ingest-key-0123456789abcde',
};
const bearer = (scope: ApiScope) => ({ authorization: `Bearer ${KEYS[scope]}` });
const SECRET = 'hardening-session-secret-0123456789abcdef';
/** Portal tokens as POST /v1/customers/{id}/portal-sessions makes them (the same secret as the app's), at revocation epoch 0: no link here is ever revoked. */
const portalTokens = createSignedTokens({ secret: SECRET, sessionTtlMs: 60_000, portalTtlMs: 60_000 });

/** Writes raw bytes on a fresh connection and collects what comes back until it closes or `untilMs` passes. */
function rawExchange(port: number, write: (socket: Socket) => void, untilMs: number): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - startedAt });
    };
    const timer = setTimeout(() => finish(false), untilMs);
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
    socket.on('connect', () => write(socket));
  });
}

function expectError(response: LightMyRequestResponse, statusCode: number, error: string): void {
  expect({ statusCode: response.statusCode, body: response.json() }).toEqual({ statusCode, body: { error, message: expect.any(String) } });
}

describe('the API under hostile clients', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let deps: ApiDeps;
  let app: FastifyInstance;
  const keyPrefix = uniqueName('hardening');
  const apps: FastifyInstance[] = [];

  const build = async (options: ApiOptions = {}, extra: Partial<ApiDeps> = {}) => {
    const built = await buildApp({ ...deps, metrics: createMetricsRegistry(), ...extra, options: { ...deps.options, ...options } });
    apps.push(built);
    return built;
  };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'hardening', max: 10 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('hardening'), pollIntervalMs: 100 });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    redis = new Redis(stackConfig.redisUrl);
    const clock = () => new Date();
    deps = {
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: (Object.keys(KEYS) as ApiScope[]).map((scope) => ({ key: KEYS[scope], scopes: [scope] })),
      logger,
      health: async () => ({ postgres: 'up' }),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      customers: createPostgresCustomerDirectory({ pool: db.pool }),
      consumption: createPostgresConsumptionStore({ pool: db.pool }),
      web: { secret: SECRET },
      deadLetters: { recent: async () => [] },
      // Real, started by no probe: every probe of its routes is refused before it would start one.
      redrives: createDeadLetterRedrives({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('hardening-redrives') },
        dlqTopic: uniqueName('hardening_dlq'),
        usageTopic: uniqueName('hardening_usage'),
        redis,
        keyPrefix,
        deadLetters: createDeadLetterLog({ redis, keyPrefix }),
        pool: db.pool,
        logger,
      }),
      deadLetterReader: createDeadLetterReader({
        kafka: { brokers: [...stackConfig.kafkaBrokers], clientId: uniqueName('hardening-letters') },
        dlqTopic: uniqueName('hardening_dlq'),
        decoder: createUsageEventDecoder({ registryUrl: stackConfig.schemaRegistryUrl }),
      }),
      subscriptions: createSubscriptionService({
        plans: createPostgresPlanStore({ pool: db.pool, logger }),
        subscriptions: createPostgresSubscriptionStore({ pool: db.pool, logger }),
        ledger,
        catalog,
        balanceRegistry,
        clock,
        logger,
      }),
    };
    app = await build();
  });

  afterAll(async () => {
    for (const built of apps) await built.close();
    await eventStore?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await redis.quit();
    }
    await db?.drop();
  });

  describe('scoped keys', () => {
    it('declares a scope on every operation of the OpenAPI document, and enforces it route by route', async () => {
      const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
      const operations = Object.entries(document.paths as Record<string, Record<string, { 'x-tally-scope'?: string; security?: unknown }>>).flatMap(
        ([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method: method.toUpperCase(), operation })),
      );
      const versioned = operations.filter(({ path }) => path.startsWith('/v1/'));
      expect(versioned.length).toBeGreaterThanOrEqual(19);
      // Signing in to the console is the one /v1 route that takes no key: the key is its body.
      const PUBLIC_V1 = ['POST /v1/console-sessions'];
      for (const { path, method, operation } of operations) {
        const scope = operation['x-tally-scope'];
        const expected = path.startsWith('/v1/') && !PUBLIC_V1.includes(`${method} ${path}`) ? expect.stringMatching(/^(admin|write|read|ingest)$/) : 'public';
        expect({ route: `${method} ${path}`, scope }).toEqual({ route: `${method} ${path}`, scope: expected });
        expect(operation.security).toEqual(scope === 'public' ? [] : [{ bearerAuth: [scope] }]);
      }
      for (const { path, method, operation } of versioned.filter((candidate) => candidate.operation['x-tally-scope'] !== 'public')) {
        const needed = operation['x-tally-scope'] as ApiScope;
        const url = path.replace(/\{[^}]+\}/g, 'scope-probe');
        for (const held of Object.keys(KEYS) as ApiScope[]) {
          const response = await app.inject({ method: method as 'GET', url, headers: bearer(held), ...(method === 'GET' ? {} : { payload: {} }) });
          const route = `${method} ${path} with a ${held} key`;
          if (scopesGrant([held], needed)) {
            expect({ route, status: response.statusCode }).not.toEqual({ route, status: 403 });
            expect({ route, status: response.statusCode }).not.toEqual({ route, status: 401 });
          } else {
            expect({ route, status: response.statusCode }).toEqual({ route, status: 403 });
            expectError(response, 403, 'insufficient_scope');
          }
        }
      }
    });

    it('admits a portal token to its own customer\'s portal routes alone, and refuses it on every other route, route by route', async () => {
      const document = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
      // Every /v1 route that takes a credential (signing in to the console takes none: its key is the body).
      const versioned = Object.entries(document.paths as Record<string, Record<string, { 'x-tally-portal'?: string; 'x-tally-scope'?: string }>>)
        .filter(([path]) => path.startsWith('/v1/'))
        .flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method: method.toUpperCase(), portal: operation['x-tally-portal'], scope: operation['x-tally-scope'] })))
        .filter(({ scope }) => scope !== 'public');
      expect(versioned.length).toBeGreaterThanOrEqual(25);
      // What a portal reaches, and nothing more.
      expect(versioned.filter(({ portal }) => portal !== undefined).map(({ method, path }) => `${method} ${path}`).sort()).toEqual([
        'GET /v1/credit-balances/{balanceId}',
        'GET /v1/credit-balances/{balanceId}/consumption',
        'GET /v1/credit-balances/{balanceId}/ledger',
        'GET /v1/credit-balances/{balanceId}/ledger.csv',
        'GET /v1/credit-balances/{balanceId}/statement',
        'GET /v1/customers/{customerId}/credit-balances',
        'GET /v1/customers/{customerId}/purchase-options',
        'GET /v1/customers/{customerId}/subscriptions',
        'POST /v1/credit-balances/{balanceId}/purchases',
      ]);
      const product = await app.inject({ method: 'POST', url: '/v1/credit-products', headers: bearer('admin'), payload: { name: 'Portal probe', consumption: [] } });
      const open = async (customerId: string) => {
        const opened = await app.inject({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, headers: bearer('admin'), payload: { productId: product.json().id } });
        expect(opened.statusCode).toBe(201);
        return opened.json().id as string;
      };
      const own = { customerId: uniqueName('portal-own'), balanceId: '' };
      own.balanceId = await open(own.customerId);
      const other = { customerId: uniqueName('portal-other'), balanceId: '' };
      other.balanceId = await open(other.customerId);
      const { token } = await portalTokens.issuePortalToken(own.customerId, 0, new Date());
      const holder = { authorization: `Bearer ${token}` };
      const urlFor = (path: string, ids: { customerId: string; balanceId: string }) =>
        path.replace(/\{customerId\}/g, encodeURIComponent(ids.customerId)).replace(/\{balanceId\}/g, ids.balanceId).replace(/\{[^}]+\}/g, 'scope-probe');
      for (const { path, method, portal } of versioned) {
        for (const [whose, ids] of [['its own customer', own], ['another customer', other]] as const) {
          const response = await app.inject({ method: method as 'GET', url: urlFor(path, ids), headers: holder, ...(method === 'GET' ? {} : { payload: {} }) });
          const route = `${method} ${path} for ${whose}`;
          if (portal !== undefined && ids === own) {
            // Reached: a read answers, a purchase without a bundle is the body's fault.
            expect({ route, status: response.statusCode }).toEqual({ route, status: method === 'GET' ? 200 : 400 });
          } else {
            expect({ route, status: response.statusCode }).toEqual({ route, status: 403 });
            expectError(response, 403, 'insufficient_scope');
          }
        }
      }
      // A token that is not one (another secret, expired) is no credential at all.
      const foreign = await createSignedTokens({ secret: 'another-secret-0123456789abcdef-xyz', sessionTtlMs: 60_000, portalTtlMs: 60_000 }).issuePortalToken(own.customerId, 0, new Date());
      const expired = await portalTokens.issuePortalToken(own.customerId, 0, new Date(Date.now() - 120_000));
      for (const stale of [foreign.token, expired.token]) {
        expectError(await app.inject({ method: 'GET', url: `/v1/customers/${encodeURIComponent(own.customerId)}/credit-balances`, headers: { authorization: `Bearer ${stale}` } }), 401, 'unauthorized');
      }
    });

    it('lets admin do everything, write read and write, read only read, ingest none of these', () => {
      expect(scopesGrant(['admin'], 'ingest')).toBe(true);
      expect(scopesGrant(['write'], 'read')).toBe(true);
      expect(scopesGrant(['write'], 'admin')).toBe(false);
      expect(scopesGrant(['read'], 'write')).toBe(false);
      expect(scopesGrant(['ingest'], 'read')).toBe(false);
    });
  });

  describe('keys in logs', () => {
    it('never writes a key, valid or not, to the log, even at trace level', async () => {
      const lines: string[] = [];
      const traced = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
      const logged = await build({}, { logger: traced });
      const guessed = 'guessed-key-that-is-not-valid-0123';
      for (const headers of [bearer('read'), bearer('admin'), { authorization: `Bearer ${guessed}` }]) {
        await logged.inject({ method: 'GET', url: '/v1/credit-products', headers });
        await logged.inject({ method: 'POST', url: '/v1/credit-products', headers, payload: { name: 'x', bad: true } });
        await logged.inject({ method: 'GET', url: '/v1/nothing', headers });
      }
      expect(lines.length).toBeGreaterThan(0);
      for (const secret of [...Object.values(KEYS), guessed]) expect(lines.filter((line) => line.includes(secret))).toEqual([]);
    });

    it('names who made each write in its request line: a key by id and configured name, a portal token by its customer', async () => {
      const lines: string[] = [];
      const logged = await build(
        {},
        {
          logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
          apiKeys: [
            { key: KEYS.admin, scopes: ['admin'], name: 'ops' },
            { key: KEYS.write, scopes: ['write'] },
          ],
        },
      );
      const customerId = uniqueName('logged-customer');
      const { token } = await portalTokens.issuePortalToken(customerId, 0, new Date());
      await logged.inject({ method: 'POST', url: '/v1/credit-products', headers: bearer('admin'), payload: { name: 'x', bad: true } });
      await logged.inject({ method: 'POST', url: '/v1/credit-balances/nope/top-ups', headers: bearer('write'), payload: { credits: '1' } });
      await logged.inject({ method: 'POST', url: '/v1/credit-products', headers: { authorization: `Bearer ${token}` }, payload: {} });
      await logged.inject({ method: 'POST', url: '/v1/credit-products', payload: {} });
      const completed = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request completed');
      const idOf = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 12);
      expect(completed.map(({ status, keyId, keyName, customerId: customer }) => ({ status, keyId, keyName, customerId: customer }))).toEqual([
        { status: 400, keyId: idOf(KEYS.admin), keyName: 'ops', customerId: undefined },
        { status: 404, keyId: idOf(KEYS.write), keyName: null, customerId: undefined },
        { status: 403, keyId: undefined, keyName: undefined, customerId },
        { status: 401, keyId: undefined, keyName: undefined, customerId: undefined },
      ]);
    });
  });

  describe('errors before a route runs', () => {
    it('answers 401 to a client without a key on unknown routes and bad URLs, the contract to one with', async () => {
      expectError(await app.inject({ method: 'GET', url: '/v1/credit-balances/%zz' }), 401, 'unauthorized');
      expectError(await app.inject({ method: 'DELETE', url: '/admin' }), 401, 'unauthorized');
      const badUrl = await app.inject({ method: 'GET', url: '/v1/credit-balances/%zz', headers: bearer('read') });
      expectError(badUrl, 400, 'bad_url');
    });

    it('refuses an encoded body with 415 and says so in words', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/credit-products',
        headers: { ...bearer('admin'), 'content-type': 'application/json', 'content-encoding': 'gzip' },
        payload: Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
      });
      expectError(response, 415, 'unsupported_content_encoding');
    });

    it('refuses a JSON body that is not UTF-8 with 400, on every route, rather than storing U+FFFD in its place', async () => {
      const name = Buffer.concat([Buffer.from('{"name":"Caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
      const response = await app.inject({ method: 'POST', url: '/v1/credit-products', headers: { ...bearer('admin'), 'content-type': 'application/json' }, payload: name });
      expectError(response, 400, 'invalid_json');
      expect(response.json().message).toMatch(/UTF-8/);
      // The same name in UTF-8 is stored as sent.
      const stored = await app.inject({ method: 'POST', url: '/v1/credit-products', headers: { ...bearer('admin'), 'content-type': 'application/json' }, payload: Buffer.from('{"name":"Café"}') });
      expect([stored.statusCode, stored.json().name]).toEqual([201, 'Café']);
    });

    it('never prints a regular expression in a validation message', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/credit-products',
        headers: bearer('admin'),
        payload: { name: 'x', bundles: [{ id: 'b', credits: '1', price: { amount: '1', currency: 'euro' } }] },
      });
      expectError(response, 400, 'validation_failed');
      expect(response.json().message).not.toMatch(/[\^$\\[\]{}]/);
    });
  });

  describe('safe headers', () => {
    it('sends nosniff and a strict content security policy, and no-store on what needs a key', async () => {
      const read = await app.inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') });
      expect(read.statusCode).toBe(200);
      expect(read.headers['x-content-type-options']).toBe('nosniff');
      expect(read.headers['cache-control']).toBe('no-store');
      expect(read.headers['content-security-policy']).toContain("default-src 'none'");
      expect(read.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      const refused = await app.inject({ method: 'GET', url: '/v1/credit-products' });
      expect(refused.headers['cache-control']).toBe('no-store');
      expect(refused.headers['www-authenticate']).toBe('Bearer');
      // The same headers on an error past the access guard as on an answer.
      const unknown = await app.inject({ method: 'GET', url: '/v1/nothing', headers: bearer('read') });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.headers['x-content-type-options']).toBe('nosniff');
      expect(unknown.headers['content-security-policy']).toBe(read.headers['content-security-policy']);
      // /docs keeps its own policy (swagger-ui's), which replaces the API's.
      const docs = await app.inject({ method: 'GET', url: '/docs/' });
      expect(docs.statusCode).toBe(200);
      expect(docs.headers['content-security-policy']).not.toBe(read.headers['content-security-policy']);
      expect(docs.headers['content-security-policy']).toContain('script-src');
    });
  });

  describe('pagination', () => {
    it('pages credit products by id with limit and the next cursor', async () => {
      for (const id of ['page-a', 'page-b', 'page-c', 'page-d', 'page-e']) {
        expect((await app.inject({ method: 'POST', url: '/v1/credit-products', headers: bearer('admin'), payload: { id, name: id } })).statusCode).toBe(201);
      }
      const seen: string[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < 10; pages += 1) {
        const query: string = after === null ? '?limit=2' : `?limit=2&after=${after}`;
        const page = (await app.inject({ method: 'GET', url: `/v1/credit-products${query}`, headers: bearer('read') })).json();
        expect(page.items.length).toBeLessThanOrEqual(2);
        // Other tests of this file make products of their own in the same schema.
        seen.push(...page.items.map((product: { id: string }) => product.id).filter((id: string) => id.startsWith('page-')));
        after = page.next;
        if (after === null) break;
      }
      expect(seen).toEqual(['page-a', 'page-b', 'page-c', 'page-d', 'page-e']);
      expectError(await app.inject({ method: 'GET', url: '/v1/credit-products?limit=501', headers: bearer('read') }), 400, 'validation_failed');
    });
  });

  describe('health', () => {
    it('answers any number of callers from the background state, one check in flight at most', async () => {
      let calls = 0;
      let inFlight = 0;
      let mostInFlight = 0;
      const check = async () => {
        calls += 1;
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 150));
        inFlight -= 1;
        return { postgres: 'up' as const };
      };
      const watched = await build({ healthIntervalMs: 100, healthTimeoutMs: 50 }, { health: check });
      const answers = await Promise.all(Array.from({ length: 200 }, () => watched.inject({ method: 'GET', url: '/health' })));
      // The first check outlives its 50 ms timeout: reported down, and not run again until it ends.
      expect(new Set(answers.map((answer) => answer.json().status))).toEqual(new Set(['down']));
      await waitFor(async () => ((await watched.inject({ method: 'GET', url: '/health' })).json().status === 'down' && calls >= 3 ? true : undefined), {
        description: 'three background checks',
        timeoutMs: 10_000,
      });
      expect(mostInFlight).toBe(1);
      expect(calls).toBeLessThan(20);
    });
  });

  describe('rate limits in Redis, shared by every API process', () => {
    /** The limiter's connection as main opens it: fail-fast and auto-pipelined. */
    const readyLimiterRedis = async (): Promise<Redis> => {
      const limiterRedis = createRedisClient({ url: stackConfig.redisUrl, ...RATE_LIMIT_REDIS_CLIENT });
      await waitFor(() => (limiterRedis.status === 'ready' ? true : undefined), { description: 'limiter redis ready', timeoutMs: 5000 });
      return limiterRedis;
    };

    it('counts every one of many concurrent requests, whose counts share pipelines, across two processes', async () => {
      const limiterRedis = await readyLimiterRedis();
      const rateLimit = { redis: limiterRedis, redisKeyPrefix: `${keyPrefix}:rl-concurrent:`, perKey: 7, windowMs: 60_000 };
      const [first, second] = [await build({ rateLimit }), await build({ rateLimit })];
      try {
        // Issued together: the limiter's scripts of a tick go to Redis as one pipeline.
        const responses = await Promise.all(
          Array.from({ length: 24 }, (_, n) => (n % 2 === 0 ? first : second).inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') })),
        );
        const statuses = responses.map((response) => response.statusCode);
        expect(statuses.filter((status) => status === 200)).toHaveLength(7);
        expect(statuses.filter((status) => status === 429)).toHaveLength(17);
        expect(await limiterRedis.get(`${keyPrefix}:rl-concurrent:key:${createHash('sha256').update(KEYS.read).digest('hex').slice(0, 12)}`)).toBe('24');
      } finally {
        limiterRedis.disconnect();
      }
    });

    it('with syncMs, holds a key to its limit in the process without a round trip, and adds the counts to Redis when it syncs', async () => {
      const limiterRedis = await readyLimiterRedis();
      // No sync comes by itself during the test: the counts reach Redis when the app closes.
      const rateLimit = { redis: limiterRedis, redisKeyPrefix: `${keyPrefix}:rl-synced:`, perKey: 5, failedAuthPerAddress: 2, windowMs: 60_000, syncMs: 3_600_000 };
      const synced = await build({ rateLimit });
      const counter = `${keyPrefix}:rl-synced:key:${createHash('sha256').update(KEYS.read).digest('hex').slice(0, 12)}`;
      try {
        const statuses: number[] = [];
        for (let n = 0; n < 7; n += 1) statuses.push((await synced.inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') })).statusCode);
        expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
        expect(await limiterRedis.get(counter)).toBeNull();
        // Requests without a valid key are still counted in Redis before they are answered.
        const keyless: number[] = [];
        for (let n = 0; n < 3; n += 1) {
          keyless.push((await synced.inject({ method: 'GET', url: '/v1/credit-products', headers: { authorization: 'Bearer guessed-key-000000000' } })).statusCode);
        }
        expect(keyless).toEqual([401, 401, 429]);
        expect(await limiterRedis.get(`${keyPrefix}:rl-synced:authfail:127.0.0.1`)).toBe('3');
        await synced.close();
        expect(await limiterRedis.get(counter)).toBe('7');
      } finally {
        limiterRedis.disconnect();
      }
    });

    it('lets requests through at once while its Redis is unreachable, and counts again once it is back', async () => {
      const limiterRedis = await readyLimiterRedis();
      const rateLimit = { redis: limiterRedis, redisKeyPrefix: `${keyPrefix}:rl-open:`, perKey: 2, windowMs: 60_000 };
      const limited = await build({ rateLimit });
      const get = async () => (await limited.inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') })).statusCode;
      try {
        expect([await get(), await get(), await get()]).toEqual([200, 200, 429]);
        limiterRedis.disconnect();
        // disconnect() only ends the socket; ioredis reaches 'end' on its close event, and until then
        // connect() refuses with "already connecting/connected" (seen once in CI under load).
        await waitFor(() => (limiterRedis.status === 'end' ? true : undefined), { description: 'limiter redis closed', timeoutMs: 5000 });
        // Fail open, without waiting for a connection: the pipelined script is refused at once.
        expect(await Promise.all([get(), get(), get()])).toEqual([200, 200, 200]);
        await limiterRedis.connect();
        expect(await get()).toBe(429);
      } finally {
        limiterRedis.disconnect();
      }
    });

    it('counts a key across two processes and answers 429 with Retry-After past its limit', async () => {
      const limiterRedis = await readyLimiterRedis();
      const rateLimit = { redis: limiterRedis, redisKeyPrefix: `${keyPrefix}:rl:`, perKey: 6, failedAuthPerAddress: 3, windowMs: 60_000 };
      const [first, second] = [await build({ rateLimit }), await build({ rateLimit })];
      try {
        const statuses: number[] = [];
        for (let n = 0; n < 8; n += 1) {
          statuses.push((await (n % 2 === 0 ? first : second).inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') })).statusCode);
        }
        expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
        const limited = await second.inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('read') });
        expectError(limited, 429, 'rate_limited');
        expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        // Another key has its own count.
        expect((await first.inject({ method: 'GET', url: '/v1/credit-products', headers: bearer('write') })).statusCode).toBe(200);

        // Without a valid key the address gets 3 tries in the window, then 429 before any key is checked.
        const keyless: number[] = [];
        for (let n = 0; n < 5; n += 1) {
          keyless.push((await first.inject({ method: 'GET', url: '/v1/credit-products', headers: { authorization: 'Bearer guessed-key-000000000' } })).statusCode);
        }
        expect(keyless).toEqual([401, 401, 401, 429, 429]);
        const counters = (await limiterRedis.keys(`${keyPrefix}:rl:*`)).map((key) => key.slice(`${keyPrefix}:rl:`.length).replace(/:.*/, ''));
        expect(new Set(counters)).toEqual(new Set(['key', 'authfail']));
      } finally {
        limiterRedis.disconnect();
      }
    });
  });

  describe('client addresses behind a proxy', () => {
    /** Each keyless request's status, from the proxy at 10.9.8.7 with the given X-Forwarded-For. */
    const statuses = async (built: FastifyInstance, forwardedFor: string[]) => {
      const seen: number[] = [];
      for (const header of forwardedFor) {
        const response = await built.inject({ method: 'GET', url: '/v1/credit-products', remoteAddress: '10.9.8.7', headers: { 'x-forwarded-for': header } });
        seen.push(response.statusCode);
      }
      return seen;
    };

    it("counts keyless requests by the forwarded address only when the proxy is trusted", async () => {
      const rateLimit = { failedAuthPerAddress: 2 };
      const trusting = await build({ trustProxy: ['10.9.8.7'], rateLimit });
      expect(await statuses(trusting, ['203.0.113.1', '203.0.113.1', '203.0.113.1', '203.0.113.2'])).toEqual([401, 401, 429, 401]);
      // Not trusted: the header is the client's say-so, and everyone behind the peer shares its budget.
      const untrusting = await build({ rateLimit });
      expect(await statuses(untrusting, ['203.0.113.1', '203.0.113.2', '203.0.113.3'])).toEqual([401, 401, 429]);
    });

    it('believes the address the trusted proxy appended, not what the client wrote before it', async () => {
      const trusting = await build({ trustProxy: ['10.9.8.7'], rateLimit: { failedAuthPerAddress: 2 } });
      // A client that writes a new address of its own each time still spends the budget of the address its proxy saw…
      expect(await statuses(trusting, ['198.51.100.1, 203.0.113.7', '198.51.100.2, 203.0.113.7', '198.51.100.3, 203.0.113.7'])).toEqual([401, 401, 429]);
      // …and another client behind the same proxy has a budget of its own.
      expect(await statuses(trusting, ['203.0.113.8'])).toEqual([401]);
    });
  });

  describe("the web pages' files", () => {
    let pages: FastifyInstance;
    let root: string;
    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'tally-pages-'));
      const files: Record<string, string> = {
        'assets/console-abc123.js': 'console.log("console")',
        'console/index.html': '<!doctype html><title>console</title>',
        'portal/index.html': '<!doctype html><title>portal</title>',
        // What a build may leave beside the pages, and what must never be served from their root.
        'console/notes.txt': 'not a page',
        '.vite/manifest.json': '{"secret":true}',
        'private.html': 'not a page either',
      };
      for (const [file, text] of Object.entries(files)) {
        await mkdir(join(root, dirname(file)), { recursive: true });
        await writeFile(join(root, file), text);
      }
      pages = await build({}, { web: { secret: SECRET, pagesRoot: root } });
    });
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it('serves the two pages uncached and the hashed assets for a year', async () => {
      for (const url of ['/console', '/console/', '/portal']) {
        const page = await pages.inject({ method: 'GET', url });
        expect({ url, status: page.statusCode, cache: page.headers['cache-control'], type: page.headers['content-type'] }).toEqual({
          url,
          status: 200,
          cache: 'no-cache',
          type: expect.stringMatching(/^text\/html/),
        });
      }
      const asset = await pages.inject({ method: 'GET', url: '/ui/assets/console-abc123.js' });
      expect({ status: asset.statusCode, cache: asset.headers['cache-control'], body: asset.body }).toEqual({
        status: 200,
        cache: 'public, max-age=31536000, immutable',
        body: 'console.log("console")',
      });
    });

    it('serves nothing else of the root, however the path is spelled', async () => {
      const probes = [
        '/ui/console/notes.txt',
        '/ui/.vite/manifest.json',
        '/ui/private.html',
        '/ui/assets/../private.html',
        '/ui/assets/%2e%2e/private.html',
        '/ui/assets/%2E%2E/.vite/manifest.json',
        '/ui/assets/..%2fprivate.html',
        '/ui/assets/..%2Fconsole%2Fnotes.txt',
        '/ui/assets/..%5cprivate.html',
        '/ui/assets/./../private.html',
        '/ui/assets//../private.html',
        '/ui/assets/%2e/%2e%2e/console/notes.txt',
        '/ui//private.html',
        '/ui/./private.html',
        '/ui/console/index.html/../notes.txt',
      ];
      const served: { url: string; status: number }[] = [];
      for (const url of probes) {
        const response = await pages.inject({ method: 'GET', url });
        if (response.statusCode < 300 || /not a page|secret/.test(response.body)) served.push({ url, status: response.statusCode });
      }
      expect(served).toEqual([]);
    });
  });

  describe('slow and greedy clients, over real connections', () => {
    let port: number;
    let listening: FastifyInstance;
    beforeAll(async () => {
      listening = await build({ bodyTimeoutMs: 500, headersTimeoutMs: 1000, requestTimeoutMs: 3000, maxConnections: 20 });
      await listening.listen({ host: '127.0.0.1', port: 0 });
      port = (listening.server.address() as { port: number }).port;
    });

    it('answers 401 to a keyless 10 MB upload after one byte, without reading the rest, and closes', async () => {
      const { text, closed, ms } = await rawExchange(
        port,
        (socket) => socket.write('POST /v1/credit-products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{'),
        5000,
      );
      expect(text).toMatch(/^HTTP\/1\.1 401 /);
      expect(text).toContain('"error":"unauthorized"');
      expect(closed).toBe(true);
      expect(ms).toBeLessThan(2000);
    });

    it('answers Expect: 100-continue only to a valid key', async () => {
      const request = (headers: string) => (socket: Socket) =>
        socket.write(`POST /v1/credit-products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nExpect: 100-continue\r\n${headers}\r\n`);
      const keyless = await rawExchange(port, request(''), 1500);
      expect(keyless.text).toMatch(/^HTTP\/1\.1 401 /);
      expect(keyless.text).not.toContain('100 Continue');
      const keyed = await rawExchange(port, request(`Authorization: Bearer ${KEYS.admin}\r\n`), 700);
      expect(keyed.text).toMatch(/^HTTP\/1\.1 100 Continue/);
    });

    it('gives a slow body 408 at the body timeout, and closes the connection', async () => {
      const { text, closed, ms } = await rawExchange(
        port,
        (socket) =>
          socket.write(`POST /v1/credit-products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`),
        5000,
      );
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
      expect(text).toContain('"error":"request_timeout"');
      expect(closed).toBe(true);
      expect(ms).toBeLessThan(3000);
    });

    it('closes a connection whose headers never finish, with a 408 in the error contract', async () => {
      const { text, closed } = await rawExchange(port, (socket) => socket.write('GET /v1/credit-products HTTP/1.1\r\nHost: x\r\n'), 5000);
      expect(closed).toBe(true);
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
      expect(text).toContain('"error":"request_timeout"');
    });

    it('answers a request that is not HTTP in the error contract', async () => {
      const { text } = await rawExchange(port, (socket) => socket.write('HELLO\r\n\r\n'), 3000);
      expect(text).toMatch(/^HTTP\/1\.1 400 /);
      expect(text).toContain('"error":"bad_request"');
    });

    it('holds no more connections than its cap', async () => {
      const held: Socket[] = [];
      try {
        for (let n = 0; n < 20; n += 1) {
          const socket = connect({ host: '127.0.0.1', port });
          socket.on('error', () => undefined);
          held.push(socket);
          await new Promise((resolve) => socket.once('connect', resolve));
        }
        // The cap counts what the server has accepted, which can trail the clients' handshakes.
        const accepted = promisify(listening.server.getConnections.bind(listening.server));
        await waitFor(async () => (await accepted()) >= 20, { description: 'the server holding all twenty connections', timeoutMs: 10_000 });
        const { text, closed } = await rawExchange(port, (socket) => socket.write(`GET /health HTTP/1.1\r\nHost: x\r\n\r\n`), 3000);
        expect(closed).toBe(true);
        expect(text).toBe('');
      } finally {
        for (const socket of held) socket.destroy();
      }
      await waitFor(async () => ((await rawExchange(port, (socket) => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'), 2000)).text.startsWith('HTTP/1.1 200') ? true : undefined), {
        description: 'the API answering again once the held connections are gone',
        timeoutMs: 10_000,
      });
    });
  });
});
