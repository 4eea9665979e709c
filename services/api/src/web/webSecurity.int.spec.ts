import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createAutoRecharges, createLedgerService, createPostgresBalanceRegistry, createPurchaseService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createPool } from '@tally/postgres';
import { createBalanceReadModel } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import pino from 'pino';
import { buildApp, type ApiDeps } from '../buildApp';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 'websec-admin-key-0123456789abcdef';
const SECRET = 'websec-session-secret-0123456789abcdef';
const PORTAL_QUANTITY_LIMIT = 3;

const cookieOf = (response: LightMyRequestResponse): string => {
  const header = ([] as string[]).concat(response.headers['set-cookie'] ?? []).find((line) => line.startsWith('tally_session='));
  if (header === undefined) throw new Error('no tally_session cookie was set');
  return header.split('; ')[0]!.slice('tally_session='.length);
};

/** What the security audit of the web credentials found (a3), each as the request that showed it. */
describe('the web credentials under audit', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let deps: ApiDeps;
  let app: FastifyInstance;
  const apps: FastifyInstance[] = [];
  const keyPrefix = uniqueName('websec');
  const admin = { authorization: `Bearer ${ADMIN}` };

  /** Another API process (or this one restarted): the same PostgreSQL schema and Redis prefix. */
  const build = async (extra: Partial<ApiDeps> = {}) => {
    const built = await buildApp({ ...deps, metrics: createMetricsRegistry(), ...extra });
    apps.push(built);
    return built;
  };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'websec' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('websec'), pollIntervalMs: 100 });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    redis = new Redis(stackConfig.redisUrl);
    const purchases = createPurchaseService({ catalog, balanceRegistry, ledger });
    deps = {
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [{ key: ADMIN, scopes: ['admin'], name: 'ops' }],
      logger,
      health: async () => ({ postgres: 'up' }),
      metrics: createMetricsRegistry(),
      purchases,
      autoRecharges: createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore }),
      deadLetters: { recent: async () => [] } as never,
      web: { secret: SECRET, redis, redisKeyPrefix: `${keyPrefix}:web:`, portalMaxPurchaseQuantity: PORTAL_QUANTITY_LIMIT },
      options: { rateLimit: { perKey: 0 } },
    };
    app = await build();
    const product = await app.inject({
      method: 'POST',
      url: '/v1/credit-products',
      headers: admin,
      payload: {
        id: 'websec-credits',
        name: 'Credits',
        consumption: [{ event: 'api_call', credits: '1' }],
        lowBalanceThreshold: '10',
        bundles: [{ id: 'b1', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      },
    });
    expect(product.statusCode).toBe(201);
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

  const signIn = async (on: FastifyInstance = app) => {
    const response = await on.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: ADMIN } });
    expect(response.statusCode).toBe(201);
    return { cookies: { tally_session: cookieOf(response) }, csrf: response.json().csrfToken as string };
  };
  const customerWithBalance = async () => {
    const customerId = uniqueName('websec-cust');
    const opened = await app.inject({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, headers: admin, payload: { productId: 'websec-credits', startingBalance: '100' } });
    expect(opened.statusCode).toBe(201);
    return { customerId, balanceId: opened.json().id as string };
  };
  const portalLink = async (customerId: string, on: FastifyInstance = app) => {
    const link = await on.inject({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions`, headers: admin });
    expect(link.statusCode).toBe(201);
    return { authorization: `Bearer ${link.json().token as string}` };
  };

  describe('console sessions', () => {
    it('refuses a session whose key no longer grants what signing in requires, whatever scopes the cookie names', async () => {
      const { cookies, csrf } = await signIn();
      const downgraded = await build({ apiKeys: [{ key: ADMIN, scopes: ['read'], name: 'ops' }] });
      expect((await downgraded.inject({ method: 'GET', url: '/v1/dead-letters', headers: admin })).statusCode).toBe(403);
      for (const response of [
        await downgraded.inject({ method: 'GET', url: '/v1/dead-letters', cookies }),
        await downgraded.inject({ method: 'GET', url: '/v1/console-sessions/current', cookies }),
        await downgraded.inject({ method: 'POST', url: '/v1/credit-products', cookies, headers: { 'x-csrf-token': csrf }, payload: { id: uniqueName('websec-evil'), name: 'x', consumption: [] } }),
      ]) {
        expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode: 401, error: 'unauthorized' });
      }
      // The key as configured still admin: the session goes on.
      expect((await app.inject({ method: 'GET', url: '/v1/dead-letters', cookies })).statusCode).toBe(200);
    });

    it('ends the session on sign-out, in every API process, not only the cookie', async () => {
      const { cookies, csrf } = await signIn();
      const other = await build();
      expect((await other.inject({ method: 'GET', url: '/v1/dead-letters', cookies })).statusCode).toBe(200);
      expect((await app.inject({ method: 'DELETE', url: '/v1/console-sessions/current', cookies, headers: { 'x-csrf-token': csrf } })).statusCode).toBe(204);
      for (const on of [app, other, await build()]) {
        expect((await on.inject({ method: 'GET', url: '/v1/dead-letters', cookies })).statusCode).toBe(401);
        const write = await on.inject({ method: 'POST', url: '/v1/credit-products', cookies, headers: { 'x-csrf-token': csrf }, payload: { id: uniqueName('websec-after'), name: 'x', consumption: [] } });
        expect(write.statusCode).toBe(401);
      }
      // Another session of the same key is not touched.
      const again = await signIn();
      expect((await app.inject({ method: 'GET', url: '/v1/dead-letters', cookies: again.cookies })).statusCode).toBe(200);
    });

    it('signs in again while a session cookie is held, without a CSRF token: sign-in is public, and JSON-only', async () => {
      const { cookies } = await signIn();
      const again = await app.inject({ method: 'POST', url: '/v1/console-sessions', cookies, payload: { key: ADMIN } });
      expect(again.statusCode).toBe(201);
      // A cross-site form cannot sign a browser in: it can only send text/plain or form bodies.
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
        const form = await app.inject({ method: 'POST', url: '/v1/console-sessions', cookies, headers: { 'content-type': contentType }, payload: `{"key":"${ADMIN}"}` });
        expect(form.statusCode).toBe(415);
      }
    });
  });

  describe('portal links', () => {
    it('revokes every link of a customer issued so far, in every API process; links made afterwards and other customers\' admit', async () => {
      const mine = await customerWithBalance();
      const theirs = await customerWithBalance();
      const leaked = await portalLink(mine.customerId);
      const others = await portalLink(theirs.customerId);
      const other = await build();
      expect((await other.inject({ method: 'GET', url: `/v1/credit-balances/${mine.balanceId}`, headers: leaked })).statusCode).toBe(200);
      // A portal token cannot revoke (nor a customer's own links): it is the provider's write.
      expect((await app.inject({ method: 'DELETE', url: `/v1/customers/${mine.customerId}/portal-sessions`, headers: leaked })).statusCode).toBe(403);

      const revoked = await app.inject({ method: 'DELETE', url: `/v1/customers/${mine.customerId}/portal-sessions`, headers: admin });
      expect(revoked.statusCode).toBe(204);
      for (const on of [app, other, await build()]) {
        const refused = await on.inject({ method: 'GET', url: `/v1/credit-balances/${mine.balanceId}`, headers: leaked });
        expect({ statusCode: refused.statusCode, error: refused.json().error }).toEqual({ statusCode: 401, error: 'unauthorized' });
        expect((await on.inject({ method: 'GET', url: `/v1/credit-balances/${theirs.balanceId}`, headers: others })).statusCode).toBe(200);
      }
      // A link made after the revocation admits at once, within the same millisecond too: no clock decides.
      const fresh = await portalLink(mine.customerId);
      expect((await other.inject({ method: 'GET', url: `/v1/credit-balances/${mine.balanceId}`, headers: fresh })).statusCode).toBe(200);
    });

    it("revokes by the order of issuing and revoking, not by the API processes' clocks", async () => {
      const { customerId, balanceId } = await customerWithBalance();
      const read = (on: FastifyInstance, headers: Record<string, string>) => on.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}`, headers });
      const revoke = async (on: FastifyInstance) => expect((await on.inject({ method: 'DELETE', url: `/v1/customers/${customerId}/portal-sessions`, headers: admin })).statusCode).toBe(204);
      // Another API process whose clock runs a minute ahead of this one's (a bad NTP).
      const ahead = await build({ web: { ...deps.web!, now: () => new Date(Date.now() + 60_000) } });

      // Issued before the revocation by the process ahead: it must not outlive it.
      const early = await portalLink(customerId, ahead);
      expect((await read(app, early)).statusCode).toBe(200);
      await revoke(app);
      for (const on of [app, ahead]) expect((await read(on, early)).statusCode).toBe(401);

      // Revoked by the process ahead, then issued by this one: a link made after the revocation admits.
      await revoke(ahead);
      const late = await portalLink(customerId, app);
      for (const on of [app, ahead]) expect((await read(on, late)).statusCode).toBe(200);
    });

    it('refuses a link issued before the upgrade (no epoch) that a revocation then or since voided, and admits it otherwise', async () => {
      // Signed as the API signed links before they carried a revocation epoch: the time alone.
      const legacyLink = async (customerId: string, issuedAtMs: number) => {
        const token = await new SignJWT({ iat_ms: issuedAtMs })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer('tally')
          .setAudience('tally-portal')
          .setSubject(customerId)
          .setIssuedAt(Math.floor(issuedAtMs / 1000))
          .setExpirationTime(Math.floor(issuedAtMs / 1000) + 3600)
          .sign(new TextEncoder().encode(SECRET));
        return { authorization: `Bearer ${token}` };
      };
      const read = (balanceId: string, headers: Record<string, string>) => app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}`, headers });
      const issuedAtMs = Date.now() - 1000;

      const untouched = await customerWithBalance();
      expect((await read(untouched.balanceId, await legacyLink(untouched.customerId, issuedAtMs))).statusCode).toBe(200);

      // Revoked before the upgrade: the old key holds the instant, and still voids the link.
      const revokedBefore = await customerWithBalance();
      await redis.set(`${keyPrefix}:web:portal-revoked:${revokedBefore.customerId}`, String(issuedAtMs + 1), 'PX', 60_000);
      expect((await read(revokedBefore.balanceId, await legacyLink(revokedBefore.customerId, issuedAtMs))).statusCode).toBe(401);
      // A link that old key does not reach (issued after that revocation) admits.
      expect((await read(revokedBefore.balanceId, await legacyLink(revokedBefore.customerId, issuedAtMs + 2))).statusCode).toBe(200);

      // Revoked since the upgrade: every link of the customer issued before it is void.
      const revokedSince = await customerWithBalance();
      const legacy = await legacyLink(revokedSince.customerId, issuedAtMs);
      expect((await read(revokedSince.balanceId, legacy)).statusCode).toBe(200);
      expect((await app.inject({ method: 'DELETE', url: `/v1/customers/${revokedSince.customerId}/portal-sessions`, headers: admin })).statusCode).toBe(204);
      expect((await read(revokedSince.balanceId, legacy)).statusCode).toBe(401);

      // Revoked during the deployment by an API process of the previous release, which writes the
      // old key alone: a link this release issued (with an epoch) before that instant is void too.
      const revokedByOld = await customerWithBalance();
      const issued = await app.inject({ method: 'POST', url: `/v1/customers/${revokedByOld.customerId}/portal-sessions`, headers: admin });
      const current = { authorization: `Bearer ${new URL(issued.json<{ url: string }>().url).hash.replace('#token=', '')}` };
      expect((await read(revokedByOld.balanceId, current)).statusCode).toBe(200);
      await redis.set(`${keyPrefix}:web:portal-revoked:${revokedByOld.customerId}`, String(Date.now() + 1), 'PX', 60_000);
      expect((await read(revokedByOld.balanceId, current)).statusCode).toBe(401);
    });

    it('issues no link while Redis does not answer (503), rather than one that a revocation might miss', async () => {
      // Never connected, and refusing commands at once rather than queueing them.
      const down = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      try {
        const cut = await build({ web: { ...deps.web!, redis: down } });
        const { customerId, balanceId } = await customerWithBalance();
        const issued = await cut.inject({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions`, headers: admin });
        expect({ statusCode: issued.statusCode, error: issued.json().error }).toEqual({ statusCode: 503, error: 'sign_in_state_unavailable' });
        const checked = await cut.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}`, headers: await portalLink(customerId) });
        expect({ statusCode: checked.statusCode, error: checked.json().error }).toEqual({ statusCode: 503, error: 'sign_in_state_unavailable' });
      } finally {
        down.disconnect();
      }
    });

    it('buys at most the configured quantity per purchase with a portal token; keys are not limited by it', async () => {
      const { customerId, balanceId } = await customerWithBalance();
      const portal = await portalLink(customerId);
      const tooMany = await app.inject({
        method: 'POST',
        url: `/v1/credit-balances/${balanceId}/purchases`,
        headers: { ...portal, 'idempotency-key': 'bulk-1' },
        payload: { bundleId: 'b1', quantity: 1_000_000 },
      });
      expect({ statusCode: tooMany.statusCode, error: tooMany.json().error }).toEqual({ statusCode: 400, error: 'portal_quantity_limit' });
      expect(tooMany.json().message).toContain(String(PORTAL_QUANTITY_LIMIT));
      const recharge = await app.inject({ method: 'PUT', url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers: portal, payload: { bundleId: 'b1', quantity: PORTAL_QUANTITY_LIMIT + 1 } });
      expect({ statusCode: recharge.statusCode, error: recharge.json().error }).toEqual({ statusCode: 400, error: 'portal_quantity_limit' });

      const allowed = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...portal, 'idempotency-key': 'bulk-2' }, payload: { bundleId: 'b1', quantity: PORTAL_QUANTITY_LIMIT } });
      expect(allowed.statusCode).toBe(201);
      const byKey = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...admin, 'idempotency-key': 'bulk-3' }, payload: { bundleId: 'b1', quantity: 50 } });
      expect(byKey.statusCode).toBe(201);
      expect(byKey.json().balance.balance).toBe(String(100 + 100 * PORTAL_QUANTITY_LIMIT + 100 * 50));
    });

    it('does not name the provider\'s key that set an auto-recharge to the portal', async () => {
      const { customerId, balanceId } = await customerWithBalance();
      const portal = await portalLink(customerId);
      const set = await app.inject({ method: 'PUT', url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers: admin, payload: { bundleId: 'b1' } });
      expect(set.json().updatedBy).toEqual({ keyId: expect.any(String), keyName: 'ops' });
      expect((await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers: admin })).json().updatedBy.keyName).toBe('ops');
      const read = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers: portal });
      expect({ statusCode: read.statusCode, updatedBy: read.json().updatedBy }).toEqual({ statusCode: 200, updatedBy: null });
      expect(read.body).not.toContain('ops');
      // Set by the portal, then changed by the key again: the portal's PUT answers what it set, unnamed too.
      const mine = await app.inject({ method: 'PUT', url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers: portal, payload: { bundleId: 'b1' } });
      expect({ statusCode: mine.statusCode, updatedBy: mine.json().updatedBy }).toEqual({ statusCode: 200, updatedBy: null });
    });
  });

  describe('answers', () => {
    it('answers a URL that does not decode 400 bad_url to a portal token and a session, as to a key', async () => {
      const { customerId } = await customerWithBalance();
      const portal = await portalLink(customerId);
      const { cookies } = await signIn();
      const url = '/v1/customers/%E0%A4%A/credit-balances';
      for (const response of [
        await app.inject({ method: 'GET', url, headers: admin }),
        await app.inject({ method: 'GET', url, headers: portal }),
        await app.inject({ method: 'GET', url, cookies }),
      ]) {
        expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode: 400, error: 'bad_url' });
      }
      // Without a valid credential, still nothing but 401.
      expect((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${'x'.repeat(20)}.${'y'.repeat(20)}.${'z'.repeat(20)}` } })).statusCode).toBe(401);
      expect((await app.inject({ method: 'GET', url, cookies: { tally_session: 'not-a-session' } })).statusCode).toBe(401);
    });

    it('tells a portal customer the event store is unavailable without the database\'s address', async () => {
      const brokenPool = createPool({ connectionString: 'postgres://postgres@127.0.0.1:1/tally', logger } as never);
      const brokenStore = createPostgresEventStore({ pool: brokenPool, logger, notifyChannel: uniqueName('websec-broken'), pollIntervalMs: 100_000 });
      try {
        const brokenLedger = createLedgerService({ eventStore: brokenStore, catalog: deps.catalog, balanceRegistry: deps.balanceRegistry, logger });
        const broken = await build({ eventStore: brokenStore, ledger: brokenLedger });
        const { customerId, balanceId } = await customerWithBalance();
        const portal = await portalLink(customerId);
        const response = await broken.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger`, headers: portal });
        expect({ statusCode: response.statusCode, error: response.json().error }).toEqual({ statusCode: 503, error: 'event_store_unavailable' });
        expect(response.json().message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|:1\b/);
      } finally {
        await brokenStore.close().catch(() => undefined);
      }
    });
  });
});
