import { createHash } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  createConsumptionProjector,
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresConsumptionStore,
  createPostgresCustomerDirectory,
  createAutoRecharges,
  createPurchaseService,
} from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import type { Worker } from '@tally/runtime';
import { createTestSchema, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp, type ApiDeps } from '../buildApp';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const ADMIN = 'web-admin-key-0123456789abcdef';
const READ = 'web-read-key-0123456789abcdef0';
const SECRET = 'web-api-session-secret-0123456789abcdef';

/** The session cookie's value and attributes, from a Set-Cookie header. */
function sessionCookie(response: LightMyRequestResponse): { value: string; attributes: string } {
  const header = ([] as string[]).concat(response.headers['set-cookie'] ?? []).find((line) => line.startsWith('tally_session='));
  if (header === undefined) throw new Error('no tally_session cookie was set');
  const [pair = '', ...attributes] = header.split('; ');
  return { value: pair.slice('tally_session='.length), attributes: attributes.join('; ') };
}

/** The API the console and the portal use: sessions, CSRF, portal links, customers, consumption. */
describe('the web interfaces\' API', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let redis: Redis;
  let deps: ApiDeps;
  let app: FastifyInstance;
  let consumptionProjector: Worker | undefined;
  const apps: FastifyInstance[] = [];
  const keyPrefix = uniqueName('webapi');

  const build = async (extra: Partial<ApiDeps> = {}) => {
    const built = await buildApp({ ...deps, metrics: createMetricsRegistry(), ...extra });
    apps.push(built);
    return built;
  };
  const admin = { authorization: `Bearer ${ADMIN}` };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'webapi' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('webapi'), pollIntervalMs: 100 });
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
      apiKeys: [
        { key: ADMIN, scopes: ['admin'], name: 'ops' },
        { key: READ, scopes: ['read'] },
      ],
      logger,
      health: async () => ({ postgres: 'up' }),
      metrics: createMetricsRegistry(),
      purchases,
      autoRecharges: createAutoRecharges({ pool: db.pool, balanceRegistry, purchases, ledger, eventStore }),
      customers: createPostgresCustomerDirectory({ pool: db.pool }),
      consumption: createPostgresConsumptionStore({ pool: db.pool }),
      web: { secret: SECRET },
    };
    // What the projector role runs: the consumption route reads its sums.
    consumptionProjector = createConsumptionProjector({ eventStore, pool: db.pool, logger });
    await consumptionProjector.start();
    app = await build();
    const product = await app.inject({
      method: 'POST',
      url: '/v1/credit-products',
      headers: admin,
      payload: { id: 'web-credits', name: 'Web credits', consumption: [{ event: 'api_call', credits: '1' }], lowBalanceThreshold: '10' },
    });
    expect(product.statusCode).toBe(201);
  });

  afterAll(async () => {
    for (const built of apps) await built.close();
    await consumptionProjector?.stop();
    await eventStore?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await redis.quit();
    }
    await db?.drop();
  });

  const openBalance = async (customerId: string) => {
    const opened = await app.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/credit-balances`, headers: admin, payload: { productId: 'web-credits', startingBalance: '100' } });
    expect(opened.statusCode).toBe(201);
    return opened.json().id as string;
  };

  describe('console sessions', () => {
    it('exchanges an admin key for an HttpOnly, SameSite=Strict, expiring cookie; its writes need the CSRF token', async () => {
      const signIn = await app.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: ADMIN } });
      expect(signIn.statusCode).toBe(201);
      const { csrfToken, scopes, expiresAt, key } = signIn.json();
      expect(scopes).toEqual(['admin']);
      // Who is signed in, by the key's id and configured name; never the key.
      expect(key).toEqual({ id: createHash('sha256').update(ADMIN).digest('hex').slice(0, 12), name: 'ops' });
      expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
      const cookie = sessionCookie(signIn);
      expect(cookie.attributes).toMatch(/HttpOnly/);
      expect(cookie.attributes).toMatch(/SameSite=Strict/);
      expect(cookie.attributes).toMatch(/Path=\//);
      expect(cookie.attributes).toMatch(/Expires=/);
      // Plain http on 127.0.0.1, as the local console is: a Secure cookie would never come back.
      expect(cookie.attributes).not.toMatch(/Secure/);
      expect(cookie.value).not.toContain(ADMIN);
      const cookies = { tally_session: cookie.value };

      const current = await app.inject({ method: 'GET', url: '/v1/console-sessions/current', cookies });
      expect(current.json()).toEqual({ key, scopes: ['admin'], expiresAt, csrfToken });
      expect((await app.inject({ method: 'GET', url: '/v1/credit-products', cookies })).statusCode).toBe(200);

      const balanceId = await openBalance(uniqueName('session-customer'));
      const topUp = { method: 'POST' as const, url: `/v1/credit-balances/${balanceId}/top-ups`, payload: { credits: '5' } };
      const withoutToken = await app.inject({ ...topUp, cookies });
      expect({ status: withoutToken.statusCode, error: withoutToken.json().error }).toEqual({ status: 403, error: 'csrf_token_invalid' });
      const wrongToken = await app.inject({ ...topUp, cookies, headers: { 'x-csrf-token': `${csrfToken}x` } });
      expect(wrongToken.statusCode).toBe(403);
      const withToken = await app.inject({ ...topUp, cookies, headers: { 'x-csrf-token': csrfToken } });
      expect(withToken.statusCode).toBe(201);
      expect(withToken.json().balance.balance).toBe('105');

      // A catalog change made through the session is recorded under the key it was opened with.
      const described = await app.inject({ method: 'PATCH', url: '/v1/credit-products/web-credits', cookies, headers: { 'x-csrf-token': csrfToken }, payload: { description: `by the console ${csrfToken}` } });
      expect(described.statusCode).toBe(200);
      const [newest] = (await app.inject({ method: 'GET', url: '/v1/credit-products/web-credits/revisions?limit=1', cookies })).json().items;
      expect({ changedBy: newest.changedBy, description: newest.product.description }).toEqual({ changedBy: { keyId: key.id, keyName: 'ops' }, description: `by the console ${csrfToken}` });

      const signOut = await app.inject({ method: 'DELETE', url: '/v1/console-sessions/current', cookies, headers: { 'x-csrf-token': csrfToken } });
      expect(signOut.statusCode).toBe(204);
      expect(([] as string[]).concat(signOut.headers['set-cookie'] ?? []).join()).toMatch(/tally_session=;/);
    });

    it('opens none for a key without the admin scope or a wrong key', async () => {
      const read = await app.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: READ } });
      expect({ status: read.statusCode, error: read.json().error, cookie: read.headers['set-cookie'] }).toEqual({ status: 403, error: 'insufficient_scope', cookie: undefined });
      const wrong = await app.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: 'not-a-key-0123456789abcdef' } });
      expect({ status: wrong.statusCode, error: wrong.json().error }).toEqual({ status: 401, error: 'unauthorized' });
      expect((await app.inject({ method: 'GET', url: '/v1/console-sessions/current', headers: admin })).json().error).toBe('no_console_session');
    });

    it('counts wrong keys given to sign in against the per-address limit of wrong bearer keys', async () => {
      const limited = await build({ options: { rateLimit: { failedAuthPerAddress: 2 } } });
      const statuses: number[] = [];
      for (let attempt = 0; attempt < 3; attempt += 1) {
        statuses.push((await limited.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: `guess-${attempt}-0123456789abcdef` } })).statusCode);
      }
      expect(statuses).toEqual([401, 401, 429]);
      // The next request without a valid key from that address, of any kind, is refused too.
      expect((await limited.inject({ method: 'GET', url: '/v1/credit-products' })).statusCode).toBe(429);
    });

    it('ends a session when its key is no longer configured, when it expires, or when another secret signed it', async () => {
      const signIn = await app.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: ADMIN } });
      const cookies = { tally_session: sessionCookie(signIn).value };
      const rotated = await build({ apiKeys: [{ key: 'rotated-admin-key-0123456789ab', scopes: ['admin'] }] });
      expect((await rotated.inject({ method: 'GET', url: '/v1/credit-products', cookies })).statusCode).toBe(401);
      const later = await build({ web: { secret: SECRET, now: () => new Date(Date.now() + 9 * 3_600_000) } });
      expect((await later.inject({ method: 'GET', url: '/v1/credit-products', cookies })).statusCode).toBe(401);
      const otherSecret = await build({ web: { secret: `${SECRET}-other` } });
      expect((await otherSecret.inject({ method: 'GET', url: '/v1/credit-products', cookies })).statusCode).toBe(401);
      // A session cookie is not a portal token, nor the other way round.
      expect((await app.inject({ method: 'GET', url: '/v1/credit-products', headers: { authorization: `Bearer ${cookies.tally_session}` } })).statusCode).toBe(401);
    });
  });

  describe('portal links', () => {
    it('links to the portal with an expiring token in the fragment, which reads that customer\'s balances', async () => {
      const customerId = uniqueName('portal customer/ü');
      await openBalance(customerId);
      const link = await app.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/portal-sessions`, headers: { ...admin, host: 'tally.example:8080' } });
      expect(link.statusCode).toBe(201);
      const { url, token, expiresAt } = link.json();
      expect(url).toBe(`http://tally.example:8080/portal#token=${token}`);
      expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(50 * 60_000);
      const balances = await app.inject({ method: 'GET', url: `/v1/customers/${encodeURIComponent(customerId)}/credit-balances`, headers: { authorization: `Bearer ${token}` } });
      expect(balances.statusCode).toBe(200);
      expect(balances.json().items).toHaveLength(1);
      expect((await app.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/portal-sessions`, headers: { authorization: `Bearer ${READ}` } })).statusCode).toBe(403);
    });

    it('builds the portal link on the configured public origin, whatever host the request came in on, and makes an https origin’s cookie Secure', async () => {
      const customerId = uniqueName('public-url customer');
      await openBalance(customerId);
      const behindProxy = await build({ web: { secret: SECRET, publicUrl: 'https://billing.example.com' } });
      const link = await behindProxy.inject({ method: 'POST', url: `/v1/customers/${encodeURIComponent(customerId)}/portal-sessions`, headers: { ...admin, host: 'tally.internal:8080' } });
      expect(link.statusCode).toBe(201);
      const { url, token } = link.json();
      expect(url).toBe(`https://billing.example.com/portal#token=${token}`);
      // Reached over https, even where TLS ends at a proxy the API does not trust to say so.
      const signIn = await behindProxy.inject({ method: 'POST', url: '/v1/console-sessions', payload: { key: ADMIN } });
      expect(sessionCookie(signIn).attributes).toMatch(/(^|; )Secure(;|$)/);
    });
  });

  describe('purchase options', () => {
    it('offers a portal only the bundles shown as purchase options, and lets it buy those alone', async () => {
      const productId = uniqueName('bundled');
      const created = await app.inject({
        method: 'POST',
        url: '/v1/credit-products',
        headers: admin,
        payload: {
          id: productId,
          name: 'Bundled',
          bundles: [
            { id: 'offered', credits: '100', price: { amount: '9.90', currency: 'EUR' } },
            { id: 'kept-back', credits: '100000', price: { amount: '500', currency: 'EUR' }, purchaseOption: false },
          ],
        },
      });
      expect(created.json().bundles.map((bundle: { id: string; purchaseOption: boolean }) => [bundle.id, bundle.purchaseOption])).toEqual([
        ['offered', true],
        ['kept-back', false],
      ]);
      const customerId = uniqueName('buyer');
      const opened = await app.inject({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, headers: admin, payload: { productId } });
      const balanceId = opened.json().id as string;
      const link = await app.inject({ method: 'POST', url: `/v1/customers/${customerId}/portal-sessions`, headers: admin });
      const portal = { authorization: `Bearer ${link.json().token as string}` };

      const options = await app.inject({ method: 'GET', url: `/v1/customers/${customerId}/purchase-options`, headers: portal });
      expect(options.json().items).toEqual([{ balanceId, productId, productName: 'Bundled', bundles: [{ id: 'offered', credits: '100', price: { amount: '9.90', currency: 'EUR' } }] }]);
      const buy = (bundleId: string, headers: Record<string, string>, key: string) =>
        app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/purchases`, headers: { ...headers, 'idempotency-key': key }, payload: { bundleId } });
      const keptBack = await buy('kept-back', portal, 'portal-1');
      expect({ status: keptBack.statusCode, error: keptBack.json().error }).toEqual({ status: 404, error: 'bundle_not_found' });
      const bought = await buy('offered', portal, 'portal-2');
      expect(bought.statusCode).toBe(201);
      expect((await buy('offered', portal, 'portal-2')).headers['idempotent-replayed']).toBe('true');
      // The API still sells a bundle kept off the portal, to a key.
      expect((await buy('kept-back', admin, 'admin-1')).json().balance.balance).toBe('100100');

      // Who asked for each change: the customer's purchase is the portal's; the key's changes show
      // the key to a key holder, and only that the provider made them to the portal's reader.
      const ledgerAs = async (headers: Record<string, string>) => {
        const read = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger`, headers });
        expect(read.statusCode).toBe(200);
        return (read.json().items as Array<{ type: string; source: string | null; actor: unknown }>).map(({ type, source, actor }) => [type, source, actor]);
      };
      const ops = { kind: 'key', keyId: createHash('sha256').update(ADMIN).digest('hex').slice(0, 12), keyName: 'ops' };
      expect(await ledgerAs(admin)).toEqual([
        ['CreditToppedUp', 'purchase', ops],
        ['CreditToppedUp', 'purchase', { kind: 'portal' }],
        ['CreditBalanceOpened', null, ops],
      ]);
      expect(await ledgerAs(portal)).toEqual([
        ['CreditToppedUp', 'purchase', { kind: 'operator' }],
        ['CreditToppedUp', 'purchase', { kind: 'portal' }],
        ['CreditBalanceOpened', null, { kind: 'operator' }],
      ]);
      const csvAsPortal = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/ledger.csv`, headers: portal });
      expect(csvAsPortal.body).not.toContain(ops.keyId);
      expect(csvAsPortal.body).not.toContain(',ops');

      // A key's purchase answered again to the portal (the same Idempotency-Key): still not named.
      const byKey = await buy('offered', admin, 'shared-1');
      expect(byKey.json().entry.actor).toEqual(ops);
      const replayedToPortal = await buy('offered', portal, 'shared-1');
      expect(replayedToPortal.headers['idempotent-replayed']).toBe('true');
      expect(replayedToPortal.json().entry.actor).toEqual({ kind: 'operator' });

      // Auto-recharge on the portal: to a bundle it offers alone, set by no key.
      const recharge = (headers: Record<string, string>, method: 'GET' | 'PUT' | 'DELETE', payload?: object) =>
        app.inject({ method, url: `/v1/credit-balances/${balanceId}/auto-recharge`, headers, ...(payload === undefined ? {} : { payload }) });
      expect((await recharge(portal, 'PUT', { bundleId: 'offered' })).json()).toMatchObject({ error: 'warning_limit_not_set' });
      expect((await app.inject({ method: 'PATCH', url: `/v1/credit-balances/${balanceId}`, headers: admin, payload: { lowBalanceThreshold: '10' } })).statusCode).toBe(200);
      const keptBackRecharge = await recharge(portal, 'PUT', { bundleId: 'kept-back' });
      expect([keptBackRecharge.statusCode, keptBackRecharge.json().error]).toEqual([404, 'bundle_not_found']);
      const set = await recharge(portal, 'PUT', { bundleId: 'offered', quantity: 2 });
      expect(set.statusCode).toBe(200);
      expect(set.json()).toMatchObject({ balanceId, bundleId: 'offered', quantity: 2, updatedBy: null });
      expect((await recharge(admin, 'GET')).json()).toEqual(set.json());
      // A key may set a bundle kept off the portal; and another customer's token reaches none of it.
      expect((await recharge(admin, 'PUT', { bundleId: 'kept-back' })).json()).toMatchObject({ bundleId: 'kept-back', updatedBy: { keyName: 'ops' } });
      const otherLink = await app.inject({ method: 'POST', url: `/v1/customers/${uniqueName('other')}/portal-sessions`, headers: admin });
      const other = { authorization: `Bearer ${otherLink.json().token as string}` };
      for (const method of ['GET', 'PUT', 'DELETE'] as const) {
        expect((await recharge(other, method, method === 'PUT' ? { bundleId: 'offered' } : undefined)).statusCode).toBe(403);
      }
      expect((await recharge(portal, 'DELETE')).statusCode).toBe(204);
    });
  });

  describe('customers', () => {
    it('lists customers with balances by id, searched by prefix, a page at a time', async () => {
      const prefix = uniqueName('cust');
      const ids = [`${prefix}-b`, `${prefix}-a`, `${prefix}-c:1`, `${prefix}-a%`, `${prefix}x`];
      for (const id of ids) await openBalance(id);
      const seen: Array<{ id: string; balances: number }> = [];
      let after: string | null = null;
      for (let pages = 0; pages < 10; pages += 1) {
        const query = new URLSearchParams({ prefix: `${prefix}-`, limit: '2', ...(after !== null ? { after } : {}) });
        const page = await app.inject({ method: 'GET', url: `/v1/customers?${query.toString()}`, headers: { authorization: `Bearer ${READ}` } });
        expect(page.statusCode).toBe(200);
        const body = page.json() as { items: Array<{ id: string; balances: number; since: string }>; next: string | null };
        expect(body.items.length).toBeLessThanOrEqual(2);
        seen.push(...body.items.map(({ id, balances }) => ({ id, balances })));
        after = body.next;
        if (after === null) break;
      }
      const expected = ids.filter((id) => id.startsWith(`${prefix}-`)).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect(seen).toEqual(expected.map((id) => ({ id, balances: 1 })));
    });
  });

  describe('consumption', () => {
    it('answers a balance\'s consumption per bucket and event name, and refuses a range it does not serve', async () => {
      const balanceId = await openBalance(uniqueName('consuming'));
      const deduct = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/deductions`, headers: admin, payload: { credits: '2.5', reason: 'retained' } });
      expect(deduct.statusCode).toBe(201);
      // From a projection, a moment behind the ledger: its answer says which position it reflects.
      const written = await eventStore.headPosition();
      const day = await waitFor(
        async () => {
          const answer = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/consumption?bucket=day`, headers: admin });
          return answer.statusCode === 200 && BigInt(answer.json<{ position: string }>().position) >= written && answer;
        },
        { description: 'the consumption projection past the deduction' },
      );
      const body = day.json();
      expect(body.bucket).toBe('day');
      expect(body.items).toEqual([{ start: expect.stringMatching(/T00:00:00\.000Z$/), event: null, credits: '2.5', refunded: '0', entries: 1 }]);

      // Refunded in part: counted in the deduction's own bucket, beside what it charged.
      const refund = await app.inject({ method: 'POST', url: `/v1/credit-balances/${balanceId}/refunds`, headers: admin, payload: { entryId: deduct.json().entry.id, credits: '1' } });
      expect(refund.statusCode).toBe(201);
      const refundedAt = await eventStore.headPosition();
      const refunded = await waitFor(
        async () => {
          const answer = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/consumption?bucket=day`, headers: admin });
          return BigInt(answer.json<{ position: string }>().position) >= refundedAt && answer.json<{ items: unknown[] }>();
        },
        { description: 'the consumption projection past the refund' },
      );
      expect(refunded.items).toEqual([{ ...body.items[0], refunded: '1' }]);
      expect(Date.parse(body.to) - Date.parse(body.from)).toBe(30 * 86_400_000);
      const refusals = [
        'bucket=minute',
        'from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z',
        'bucket=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z',
        'from=yesterday',
      ];
      for (const query of refusals) {
        const refused = await app.inject({ method: 'GET', url: `/v1/credit-balances/${balanceId}/consumption?${query}`, headers: admin });
        expect({ query, status: refused.statusCode }).toEqual({ query, status: 400 });
      }
      expect((await app.inject({ method: 'GET', url: '/v1/credit-balances/nope/consumption', headers: admin })).statusCode).toBe(404);
    });
  });
});
