import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry, createPurchaseService, type BalanceRegistry, type LedgerService } from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceProjector, createBalanceReadModel, type BalanceProjector } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';
import type { BalanceView } from './balanceView';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';

/**
 * Two operators editing one balance's settings: each change is made against the version read
 * (ETag / If-Match), so one made meanwhile is never silently undone. Audit: B lowered the warning
 * limit, A's older dialog saved a rename with the limit it had read, putting the limit back and
 * warning a second time nobody meant.
 */
describe('balance ETag and If-Match', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let ledger: LedgerService;
  let redis: Redis;
  let projector: BalanceProjector;
  let app: FastifyInstance;
  const keyPrefix = uniqueName('balance_etag');

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_etag', max: 10 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('balance_etag'), pollIntervalMs: 100 });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    redis = new Redis(stackConfig.redisUrl);
    projector = createBalanceProjector({ eventStore, redis, keyPrefix, logger, pollIntervalMs: 100 });
    await projector.start();
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix }),
      eventStore,
      apiKeys: [KEY],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      options: { consistencyTimeoutMs: 20_000 },
    });
  });

  afterAll(async () => {
    await app?.close();
    await projector?.stop();
    await ledger?.close();
    await eventStore?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await redis.quit();
    }
    await db?.drop();
  });

  const call = (options: InjectOptions): Promise<LightMyRequestResponse> => app.inject({ ...options, headers: { authorization: `Bearer ${KEY}`, ...options.headers } });

  async function openBalance(body: Record<string, unknown>, customerId = `cus_${randomUUID()}`): Promise<LightMyRequestResponse> {
    const product = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'Tokens' } });
    expect(product.statusCode).toBe(201);
    return call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId: product.json().id, ...body } });
  }

  const read = (balanceId: string) => call({ method: 'GET', url: `/v1/credit-balances/${balanceId}?consistent=true` });
  const patch = (balanceId: string, payload: Record<string, unknown>, ifMatch?: string) =>
    call({ method: 'PATCH', url: `/v1/credit-balances/${balanceId}`, payload, headers: ifMatch === undefined ? {} : { 'if-match': ifMatch } });
  const eventTypes = async (balanceId: string) => (await eventStore.readStream(balanceStreamId(balanceId))).map((event) => event.type);

  it("refuses a change made against a version another change replaced (412 balance_changed), appending nothing, and names no second warning", async () => {
    const opened = await openBalance({ startingBalance: '80', lowBalanceThreshold: '100' });
    expect(opened.statusCode).toBe(201);
    const balanceId = opened.json<BalanceView>().id;
    // Operator A's dialog opens: the balance as read, and its ETag.
    const readByA = await read(balanceId);
    expect(readByA.statusCode).toBe(200);
    const etagA = readByA.headers.etag;
    expect(etagA).toMatch(/^"[0-9]+"$/);
    expect(readByA.json<BalanceView>()).toMatchObject({ lowBalanceThreshold: '100', belowThreshold: true, revision: etagA!.slice(1, -1) });

    // Operator B lowers the limit, against what B read.
    const byB = await patch(balanceId, { lowBalanceThreshold: '50' }, (await read(balanceId)).headers.etag as string);
    expect(byB.statusCode).toBe(200);
    expect(byB.json<BalanceView>()).toMatchObject({ lowBalanceThreshold: '50' });
    expect(byB.headers.etag).toBe(`"${byB.json<BalanceView>().revision}"`);
    expect(byB.headers.etag).not.toBe(etagA);
    const before = await eventTypes(balanceId);

    // Operator A saves a rename with the limit A read, against the version A read: refused.
    const byA = await patch(balanceId, { name: 'Renamed', lowBalanceThreshold: '100' }, etagA);
    expect(byA.statusCode).toBe(412);
    expect(byA.json()).toEqual({ error: 'balance_changed', message: expect.stringContaining(balanceId) });
    expect(await eventTypes(balanceId)).toEqual(before);
    expect((await read(balanceId)).json<BalanceView>()).toMatchObject({ name: 'Tokens', lowBalanceThreshold: '50' });

    // Against the version as it is now, the rename lands; `*` matches any version.
    const current = (await read(balanceId)).headers.etag as string;
    expect(current).toBe(byB.headers.etag);
    expect((await patch(balanceId, { name: 'Renamed' }, current)).statusCode).toBe(200);
    expect((await patch(balanceId, { name: 'Renamed again' }, '*')).statusCode).toBe(200);
    expect((await eventTypes(balanceId)).filter((type) => type === 'LowBalanceWarned')).toHaveLength(1);
  });

  it('without If-Match changes the balance as it is, as before', async () => {
    const balanceId = (await openBalance({ startingBalance: '10' })).json<BalanceView>().id;
    await patch(balanceId, { name: 'First' });
    const answer = await patch(balanceId, { name: 'Second' });
    expect(answer.statusCode).toBe(200);
    expect(answer.json<BalanceView>()).toMatchObject({ name: 'Second' });
  });

  it('refuses an If-Match that is no ETag of a balance (400)', async () => {
    const balanceId = (await openBalance({})).json<BalanceView>().id;
    const answer = await patch(balanceId, { name: 'x' }, 'W/"1"');
    expect(answer.statusCode).toBe(400);
  });

  it('gives a new ETag after every change of the balance, a top-up and a settings change alike, and the same one while nothing changed', async () => {
    const opened = await openBalance({ startingBalance: '10' });
    expect(opened.headers.etag).toBe(`"${opened.json<BalanceView>().revision}"`);
    const balanceId = opened.json<BalanceView>().id;
    const first = (await read(balanceId)).headers.etag;
    expect(first).toBe(opened.headers.etag);
    expect((await read(balanceId)).headers.etag).toBe(first);

    const topUp = await call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/top-ups`, payload: { credits: '5' } });
    expect(topUp.statusCode).toBe(201);
    const afterTopUp = await read(balanceId);
    expect(afterTopUp.headers.etag).not.toBe(first);
    expect(afterTopUp.headers.etag).toBe(`"${topUp.json<{ balance: BalanceView }>().balance.revision}"`);
    // The version read before the top-up no longer matches.
    expect((await patch(balanceId, { name: 'Stale' }, first as string)).statusCode).toBe(412);

    const renamed = await patch(balanceId, { name: 'Renamed' }, afterTopUp.headers.etag as string);
    expect(renamed.statusCode).toBe(200);
    const afterRename = await read(balanceId);
    expect(afterRename.headers.etag).toBe(renamed.headers.etag);
    expect(afterRename.headers.etag).not.toBe(afterTopUp.headers.etag);
    // A change to the same values changes nothing: the version stays.
    const same = await patch(balanceId, { name: 'Renamed' }, afterRename.headers.etag as string);
    expect(same.statusCode).toBe(200);
    expect(same.headers.etag).toBe(afterRename.headers.etag);
  });

  it('names the balance a second opening finds (409 balance_already_exists), for a client whose first answer was lost', async () => {
    const customerId = `cus_${randomUUID()}`;
    const product = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'Tokens' } });
    const open = () => call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId: product.json().id } });
    const first = await open();
    expect(first.statusCode).toBe(201);
    const again = await open();
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ error: 'balance_already_exists', message: expect.stringContaining(first.json<BalanceView>().id) });
    expect(again.headers.location).toBe(`/v1/credit-balances/${first.json<BalanceView>().id}`);
  });
});
