import { createHash, randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { createPostgresEventStore, type EventStore, type EventToAppend } from '@tally/event-store';
import { balanceStreamId, decide, evolve, foldBalance, MAX_OPEN_HOLDS, type BalanceEvent, type BalanceState } from '@tally/domain';
import {
  commandIds,
  createLedgerService,
  createPostgresBalanceRegistry,
  createPurchaseService,
  fromRecordedEvent,
  holdIdOf,
  toEventsToAppend,
} from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceProjector, createBalanceReadModel, replayBalances, type BalanceProjector } from '@tally/projections';
import { createTestSchema, stackConfig, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { BalanceView } from '../balances/balanceView';
import { buildApp } from '../buildApp';
import type { HoldView } from './holdView';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'holds-key-0123456789abcdef';

/** Issue 15 against the real stack: holds, captures, releases and entitlement checks over HTTP, with the read model behind. */
describe('holds and entitlements over HTTP (PostgreSQL, Redis)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let redis: Redis;
  let projector: BalanceProjector;
  let app: FastifyInstance;
  const keyPrefix = uniqueName('holds-api');
  let productId: string;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'holds_api', max: 20 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('holds'), pollIntervalMs: 100 });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
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
      health: async () => ({ postgres: 'up', redis: 'up' }),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      options: { consistencyTimeoutMs: 20_000 },
    });
    const product = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'Renders' } });
    productId = product.json<{ id: string }>().id;
  });

  afterAll(async () => {
    await app?.close();
    await projector?.stop();
    await eventStore?.close();
    if (redis !== undefined) {
      const keys = await redis.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await redis.unlink(...keys);
      await redis.quit();
    }
    await db?.drop();
  });

  function call(options: InjectOptions): Promise<LightMyRequestResponse> {
    return app.inject({ ...options, headers: { authorization: `Bearer ${KEY}`, ...options.headers } });
  }

  async function openBalance(startingBalance: string, overdraftLimit?: string): Promise<BalanceView> {
    const response = await call({
      method: 'POST',
      url: `/v1/customers/cus_${randomUUID()}/credit-balances`,
      payload: { productId, startingBalance, ...(overdraftLimit !== undefined ? { overdraftLimit } : {}) },
    });
    expect(response.statusCode).toBe(201);
    return response.json<BalanceView>();
  }

  const hold = (balanceId: string, key: string, payload: Record<string, unknown>) =>
    call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/holds`, headers: { 'idempotency-key': key }, payload });
  const onHold = (holdId: string, action: 'capture' | 'release', payload: Record<string, unknown> = {}) =>
    call({ method: 'POST', url: `/v1/holds/${encodeURIComponent(holdId)}/${action}`, payload });
  const balanceOf = async (balanceId: string) =>
    (await call({ method: 'GET', url: `/v1/credit-balances/${balanceId}?consistent=true` })).json<BalanceView>();
  const figures = (view: { balance: string; held: string; available: string }) => ({ balance: view.balance, held: view.held, available: view.available });

  it('grants exactly 10 of 50 concurrent holds on a balance that fits 10, and refuses the rest 402 with what is available', async () => {
    const balance = await openBalance('10');
    const responses = await Promise.all(Array.from({ length: 50 }, (_, index) => hold(balance.id, `job-${index}`, { credits: '1', expiresInSeconds: 600 })));
    const granted = responses.filter((response) => response.statusCode === 201);
    const refused = responses.filter((response) => response.statusCode === 402);
    expect({ granted: granted.length, refused: refused.length }).toEqual({ granted: 10, refused: 40 });
    for (const response of refused) {
      expect(response.json()).toMatchObject({ error: 'insufficient_credits', message: 'the hold of 1 credits does not fit', available: expect.any(String), overdraftLimit: '0' });
    }
    // Never below −overdraftLimit through holds, at any grant.
    for (const response of granted) expect(Number(response.json<HoldView>().available)).toBeGreaterThanOrEqual(0);
    expect(figures(await balanceOf(balance.id))).toEqual({ balance: '10', held: '10', available: '0' });
  });

  it('refuses 400 an expiresAt without a zone or off the calendar, saying so, and holds nothing', async () => {
    const balance = await openBalance('10');
    // Tomorrow at 24:00 (Date.parse: the day after at 00:00, within the week) and 30 February
    // (Date.parse: 2 March) name no time the caller wrote; a time without a zone names one per host.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    // The schema's date-time format refuses the first three; the spellings it admits are refused
    // by the domain's reading of times, as every other time the API takes.
    const cases: [string, RegExp][] = [
      [`${tomorrow}T24:00:00Z`, /^body\.expiresAt must be a date-time such as/],
      ['2027-02-30T00:00:00Z', /^body\.expiresAt must be a date-time such as/],
      [`${tomorrow}T12:00:00`, /^body\.expiresAt must be a date-time such as/],
      [`${tomorrow}T23:59:60Z`, /^expiresAt ".*" is not a date and time on the calendar$/],
      [`${tomorrow}T12:00:00+05`, /^expiresAt must be ISO-8601 with a zone, e\.g\. 2026-03-01T12:00:00Z/],
      [`${tomorrow} 12:00:00Z`, /^expiresAt must be ISO-8601 with a zone, e\.g\. 2026-03-01T12:00:00Z/],
    ];
    for (const [index, [expiresAt, message]] of cases.entries()) {
      const response = await hold(balance.id, `bad-time-${index}`, { credits: '1', expiresAt });
      expect({ expiresAt, statusCode: response.statusCode, body: response.json() }).toEqual({
        expiresAt,
        statusCode: 400,
        body: { error: 'validation_failed', message: expect.stringMatching(message) },
      });
    }
    expect(figures(await balanceOf(balance.id))).toEqual({ balance: '10', held: '0', available: '10' });
  });

  it('places a hold (201 { id, credits, expiresAt, available }), answers a retry with it, and refuses the key with another body', async () => {
    const balance = await openBalance('10');
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const first = await hold(balance.id, 'render:1', { credits: '2.5', expiresAt, reference: 'frame 1' });
    expect(first.statusCode).toBe(201);
    const placed = first.json<HoldView>();
    expect(placed).toMatchObject({ id: `${balance.id}:render%3A1`, status: 'open', credits: '2.5', expiresAt, available: '7.5', held: '2.5', balance: '10', reference: 'frame 1' });
    const again = await hold(balance.id, 'render:1', { credits: '2.50', expiresAt, reference: 'frame 1' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(placed);
    expect((await hold(balance.id, 'render:1', { credits: '3', expiresAt })).statusCode).toBe(409);
    expect((await hold(balance.id, 'both', { credits: '1', expiresAt, expiresInSeconds: 5 })).statusCode).toBe(400);
    expect((await hold(balance.id, 'neither', { credits: '1' })).statusCode).toBe(400);
    expect((await hold(balance.id, 'past', { credits: '1', expiresAt: '2020-01-01T00:00:00Z' })).statusCode).toBe(400);
    expect((await hold(balance.id, 'no-such-time', { credits: '1', expiresAt: '2030-13-01T25:00:00Z' })).statusCode).toBe(400);
    expect((await hold(balance.id, 'too-far', { credits: '1', expiresAt: '2099-01-01T00:00:00Z' })).statusCode).toBe(400);
    expect((await hold(balance.id, 'zero', { credits: '0', expiresInSeconds: 5 })).statusCode).toBe(400);
    expect((await hold('no-such-balance', 'k', { credits: '1', expiresInSeconds: 5 })).statusCode).toBe(404);
    const withoutKey = await call({ method: 'POST', url: `/v1/credit-balances/${balance.id}/holds`, payload: { credits: '1', expiresInSeconds: 5 } });
    expect(withoutKey.statusCode).toBe(400);
  });

  it('answers a capture without an amount and one naming the whole hold as the same request, either way round', async () => {
    const balance = await openBalance('10');
    const unnamedFirst = (await hold(balance.id, 'unnamed-first', { credits: '4', expiresInSeconds: 600 })).json<HoldView>();
    const namedFirst = (await hold(balance.id, 'named-first', { credits: '2', expiresInSeconds: 600 })).json<HoldView>();
    const pairs: [string, Record<string, unknown>, Record<string, unknown>][] = [
      [unnamedFirst.id, {}, { credits: '4.00' }],
      [namedFirst.id, { credits: '2', reason: null }, {}],
    ];
    for (const [holdId, first, second] of pairs) {
      const captured = await onHold(holdId, 'capture', first);
      expect([captured.statusCode, captured.headers['idempotent-replayed']]).toEqual([200, 'false']);
      const again = await onHold(holdId, 'capture', second);
      expect([again.statusCode, again.headers['idempotent-replayed']]).toEqual([200, 'true']);
      expect(again.json()).toEqual(captured.json());
    }
    // Another amount is another request: refused, the hold captured already (capture takes no Idempotency-Key).
    const another = await onHold(unnamedFirst.id, 'capture', { credits: '3' });
    expect({ status: another.statusCode, error: another.json().error }).toEqual({ status: 409, error: 'hold_not_open' });
    expect(another.json().message).toMatch(/^hold .+ is not open: it was captured already \(4 credits charged\)/);
    expect(figures(await balanceOf(balance.id))).toEqual({ balance: '4', held: '0', available: '4' });
  });

  it('captures and releases with no body at all (so no content-type either), as the body is optional', async () => {
    const balance = await openBalance('10');
    const captured = (await hold(balance.id, 'bare-capture', { credits: '4', expiresInSeconds: 600 })).json<HoldView>();
    const freed = (await hold(balance.id, 'bare-release', { credits: '2', expiresInSeconds: 600 })).json<HoldView>();
    const bare = (holdId: string, action: 'capture' | 'release') => call({ method: 'POST', url: `/v1/holds/${encodeURIComponent(holdId)}/${action}` });
    const capture = await bare(captured.id, 'capture');
    expect([capture.statusCode, capture.json()]).toEqual([200, expect.objectContaining({ status: 'captured', captured: '4' })]);
    const release = await bare(freed.id, 'release');
    expect([release.statusCode, release.json()]).toEqual([200, expect.objectContaining({ status: 'released', released: '2' })]);
    // The same request as one with an empty body: answered again, not refused.
    expect((await onHold(captured.id, 'capture')).headers['idempotent-replayed']).toBe('true');
  });

  it('captures in full and in part and releases, exactly, idempotently, visible in all three figures; then 409 on a freed hold', async () => {
    const balance = await openBalance('10');
    const full = (await hold(balance.id, 'full', { credits: '4', expiresInSeconds: 600 })).json<HoldView>();
    const part = (await hold(balance.id, 'part', { credits: '3', expiresInSeconds: 600 })).json<HoldView>();
    const free = (await hold(balance.id, 'free', { credits: '2', expiresInSeconds: 600 })).json<HoldView>();
    expect(figures(await balanceOf(balance.id))).toEqual({ balance: '10', held: '9', available: '1' });

    const captured = await onHold(full.id, 'capture');
    expect(captured.statusCode).toBe(200);
    expect(captured.json()).toMatchObject({ status: 'captured', credits: '4', captured: '4', released: '0', balance: '6', held: '5', available: '1' });
    const tooMuch = await onHold(part.id, 'capture', { credits: '3.000001' });
    expect({ statusCode: tooMuch.statusCode, body: tooMuch.json() }).toEqual({
      statusCode: 400,
      body: { error: 'invalid_amount', message: 'credits must not exceed the 3 credits held' },
    });
    const partial = await onHold(part.id, 'capture', { credits: '1.25', reason: 'finished early' });
    expect(partial.json()).toMatchObject({ status: 'captured', credits: '3', captured: '1.25', released: '1.75', balance: '4.75', held: '2', available: '2.75' });
    const released = await onHold(free.id, 'release', { reason: 'cancelled' });
    expect(released.json()).toMatchObject({ status: 'released', credits: '2', released: '2', balance: '4.75', held: '0', available: '4.75' });

    const again = await onHold(part.id, 'capture', { credits: '1.250', reason: 'finished early' });
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(partial.json());
    expect((await onHold(free.id, 'release', { reason: 'cancelled' })).headers['idempotent-replayed']).toBe('true');
    // A second capture or release that differs from the first is refused for the hold, not for a key the client never sent.
    for (const [holdId, action, payload, was] of [
      [part.id, 'capture', { credits: '1' }, /it was captured already \(1\.25 credits charged\)/],
      [free.id, 'release', { reason: 'another reason' }, /it was released already/],
    ] as const) {
      const refused = await onHold(holdId, action, payload);
      expect({ status: refused.statusCode, error: refused.json().error }).toEqual({ status: 409, error: 'hold_not_open' });
      expect(refused.json().message).toMatch(was);
      expect(refused.json().message).not.toMatch(/idempotency/i);
    }
    const capturedReleased = await onHold(free.id, 'capture');
    expect({ status: capturedReleased.statusCode, error: capturedReleased.json().error }).toEqual({ status: 409, error: 'hold_not_open' });
    expect((await onHold(full.id, 'release')).statusCode).toBe(409);
    expect((await onHold(`${balance.id}:never`, 'capture')).statusCode).toBe(404);
    expect((await onHold('nonsense', 'release')).statusCode).toBe(404);

    // The ledger shows every step; the read model agrees, and so does a replay from the event store.
    const ledger = (await call({ method: 'GET', url: `/v1/credit-balances/${balance.id}/ledger?limit=50` })).json<{ items: { type: string; actor: unknown }[] }>();
    // Each step asked for with the one (unnamed) key, and each says so.
    const key = { kind: 'key', keyId: createHash('sha256').update(KEY).digest('hex').slice(0, 12), keyName: null };
    expect(ledger.items.map((entry) => entry.actor)).toEqual(ledger.items.map(() => key));
    expect(ledger.items.map((entry) => entry.type).reverse()).toEqual([
      'CreditBalanceOpened',
      'CreditToppedUp',
      'CreditsHeld',
      'CreditsHeld',
      'CreditsHeld',
      'CreditConsumed',
      'HoldCaptured',
      'CreditConsumed',
      'HoldCaptured',
      'HoldReleased',
    ]);
    const before = await balanceOf(balance.id);
    expect(figures(before)).toEqual({ balance: '4.75', held: '0', available: '4.75' });
    await replayBalances({ eventStore, redis, keyPrefix, logger });
    await waitFor(async () => (await balanceOf(balance.id)).position === before.position, { description: 'the replayed read model to serve the balance' });
    expect(await balanceOf(balance.id)).toEqual(before);
  });

  it('grants holds up to MAX_OPEN_HOLDS on a balance and refuses the next 409 too_many_open_holds, until one is freed', async () => {
    const balance = await openBalance('1');
    const streamId = balanceStreamId(balance.id);
    const context = { balanceId: balance.id, customerId: balance.customerId, productId };
    // All but the last hold decided by the domain and appended in one call, as the ledger writes
    // a placement (one command id per hold): a thousand requests would take most of a minute.
    const stored = await eventStore.readStream(streamId);
    let state: BalanceState = foldBalance(stored.map((recorded) => fromRecordedEvent(recorded).event));
    const now = new Date();
    const expiresAt = new Date(now.getTime() + 600_000).toISOString();
    const appended: EventToAppend[] = [];
    for (let index = 0; index < MAX_OPEN_HOLDS - 1; index += 1) {
      const key = `bulk-${index}`;
      const events: BalanceEvent[] = decide(
        { type: 'PlaceHold', holdId: holdIdOf(balance.id, key), credits: 1n, expiresAt, reference: null, at: now.toISOString() },
        state,
      );
      state = events.reduce(evolve, state);
      appended.push(...toEventsToAppend(events, context, commandIds.request(balance.id, 'hold', key)));
    }
    await eventStore.appendMany([{ streamId, expectedRevision: stored.at(-1)!.revision, events: appended }]);

    const last = await hold(balance.id, 'last', { credits: '0.000001', expiresInSeconds: 600 });
    expect(last.statusCode).toBe(201);
    expect(last.json<HoldView>()).toMatchObject({ held: '0.001', available: '0.999' });
    const refused = await hold(balance.id, 'one-more', { credits: '0.000001', expiresInSeconds: 600 });
    expect({ statusCode: refused.statusCode, body: refused.json() }).toEqual({
      statusCode: 409,
      body: {
        error: 'too_many_open_holds',
        message: `the balance has ${MAX_OPEN_HOLDS} open holds and may have at most ${MAX_OPEN_HOLDS}: capture or release some before placing another`,
      },
    });
    expect(figures(await balanceOf(balance.id))).toEqual({ balance: '1', held: '0.001', available: '0.999' });
    // Freeing one makes room: the refused request, sent again, is granted.
    expect((await onHold(holdIdOf(balance.id, 'bulk-0'), 'release')).statusCode).toBe(200);
    expect((await hold(balance.id, 'one-more', { credits: '0.000001', expiresInSeconds: 600 })).statusCode).toBe(201);
  });

  it('answers entitlement checks from the read model, with overdraft, position and lag', async () => {
    const balance = await openBalance('5', '2');
    await hold(balance.id, 'e1', { credits: '4', expiresInSeconds: 600 });
    const url = (credits: string) => `/v1/customers/${encodeURIComponent(balance.customerId)}/entitlements/${productId}?credits=${credits}&consistent=true`;
    const fits = await call({ method: 'GET', url: url('3') });
    expect(fits.statusCode).toBe(200);
    expect(fits.json()).toMatchObject({ allowed: true, balance: '5', held: '4', available: '1', overdraftLimit: '2' });
    expect(typeof fits.json().position).toBe('string');
    expect(fits.json().lagMs === null || fits.json().lagMs >= 0).toBe(true);
    expect((await call({ method: 'GET', url: url('3.000001') })).json()).toMatchObject({ allowed: false, available: '1' });
    // A hold of what the check allowed is granted; one more micro-credit is not.
    expect((await hold(balance.id, 'e2', { credits: '3', expiresInSeconds: 600 })).statusCode).toBe(201);
    expect((await hold(balance.id, 'e3', { credits: '0.000001', expiresInSeconds: 600 })).statusCode).toBe(402);
    expect((await call({ method: 'GET', url: url('0') })).json()).toMatchObject({ allowed: true, available: '-2' });
    const none = await call({ method: 'GET', url: `/v1/customers/${encodeURIComponent(balance.customerId)}/entitlements/no-such-product` });
    expect(none.statusCode).toBe(404);
    // PATCH changes the limit, and the check follows.
    expect((await call({ method: 'PATCH', url: `/v1/credit-balances/${balance.id}`, payload: { overdraftLimit: '3' } })).json()).toMatchObject({ overdraftLimit: '3' });
    expect((await call({ method: 'GET', url: url('1') })).json()).toMatchObject({ allowed: true, overdraftLimit: '3' });
  });
});
