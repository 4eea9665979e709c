import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPurchaseService,
  toEventsToAppend,
} from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { countingEventStore, createTestSchema, stackConfig, uniqueName, waitFor, type CountedRead, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';
import type { BalanceView } from './balanceView';

jest.setTimeout(300_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';
/** Long enough that folding it (40 pages, each a query) outlasts the tiny budget by far. */
const HISTORY = 40_000;
const STARTING = 1_000_000;
const TINY_BUDGET_MS = 20;

/**
 * Issue: a top-up on a huge, busy balance was cut off by the request timeout while the API
 * folded the balance's history. Here the API answers 503 balance_loading within its budget
 * instead, and the client's retry with the same Idempotency-Key lands once.
 */
describe('a write on a balance whose history is still being folded', () => {
  let db: TestSchema;
  let redis: Redis;
  let eventStore: EventStore;
  let app: FastifyInstance;
  let productId: string;
  /** Events read by reads that started at or below a revision: how often a history was folded. */
  let reads: readonly CountedRead[] = [];
  const readBelow = (streamId: string, revision: bigint) =>
    reads.filter((read) => read.streamId === streamId && read.fromRevision <= revision).reduce((sum, read) => sum + read.events, 0);

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_loading', max: 12 });
    redis = new Redis(stackConfig.redisUrl);
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('loading') });
    const counting = countingEventStore(eventStore);
    reads = counting.reads;
    const counted = counting.store;
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    const ledger = createLedgerService({
      eventStore: counted,
      catalog,
      balanceRegistry,
      logger,
      stateStore: createPostgresBalanceStateStore({ pool: db.pool }),
      loadBudgetMs: TINY_BUDGET_MS,
    });
    app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('loading') }),
      eventStore: counted,
      apiKeys: [KEY],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
    });
    const product = await call({ method: 'POST', url: '/v1/credit-products', payload: { name: 'API calls' } });
    expect(product.statusCode).toBe(201);
    productId = product.json<{ id: string }>().id;
  });

  afterAll(async () => {
    await app?.close();
    await eventStore?.close();
    await redis?.quit();
    await db?.drop();
  });

  function call(options: InjectOptions): Promise<LightMyRequestResponse> {
    return app.inject({ ...options, headers: { authorization: `Bearer ${KEY}`, ...options.headers } });
  }

  /** A balance opened through the API, then HISTORY usage charges appended in big batches: its end revision. */
  async function longBalance(): Promise<{ balanceId: string; end: bigint }> {
    const customerId = `cus_${randomUUID()}`;
    // Under the tiny budget even an empty stream's load can outlast it on a busy machine: the
    // opening is then answered 503 balance_loading too, and its retry completes it (the registry
    // row is written before the stream, see LedgerService.openBalance).
    const opened = await untilLoaded('the opening', () =>
      call({ method: 'POST', url: `/v1/customers/${customerId}/credit-balances`, payload: { productId, startingBalance: String(STARTING) } }),
    );
    expect(opened.statusCode).toBe(201);
    const balanceId = opened.json<BalanceView>().id;
    const streamId = balanceStreamId(balanceId);
    let end = (await eventStore.readStream(streamId, { direction: 'backwards', maxCount: 1 }))[0]!.revision;
    const context = { balanceId, customerId, productId };
    const occurredAt = new Date().toISOString();
    const micros = (n: number) => BigInt(n) * MICROS_PER_CREDIT;
    for (let done = 0; done < HISTORY; done += 5_000) {
      const events: BalanceEvent[] = Array.from({ length: 5_000 }, (_, i) => ({
        type: 'CreditConsumed',
        credits: micros(1),
        source: 'manual',
        reason: 'history',
        usage: null,
        balanceAfter: micros(STARTING - done - i - 1),
        heldAfter: 0n,
        occurredAt,
      }));
      const [appended] = await eventStore.appendMany([{ streamId, expectedRevision: end, events: toEventsToAppend(events, context, `history:${randomUUID()}`) }]);
      end = appended!.nextExpectedRevision;
    }
    return { balanceId, end };
  }

  const topUp = (balanceId: string, key: string) =>
    call({ method: 'POST', url: `/v1/credit-balances/${balanceId}/top-ups`, headers: { 'idempotency-key': key }, payload: { credits: '5', reason: 'retry me' } });

  /** Sends the request until it is answered other than 503 balance_loading; that answer. */
  function untilLoaded(what: string, send: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse> {
    return waitFor(
      async () => {
        const response = await send();
        return response.statusCode === 503 && response.json<{ error: string }>().error === 'balance_loading' ? false : response;
      },
      { description: `${what} to be answered other than balance_loading`, timeoutMs: 120_000, intervalMs: 20 },
    );
  }

  async function toppedUp(balanceId: string, end: bigint): Promise<number> {
    const tail = await eventStore.readStream(balanceStreamId(balanceId), { fromRevision: end + 1n });
    return tail.filter((event) => event.type === 'CreditToppedUp').length;
  }

  it('answers 503 balance_loading with Retry-After, then applies the retry with the same Idempotency-Key once', async () => {
    const { balanceId, end } = await longBalance();
    const first = await topUp(balanceId, 'k1');
    expect(first.statusCode).toBe(503);
    expect(first.headers['retry-after']).toBe('1');
    expect(first.json()).toEqual({ error: 'balance_loading', message: expect.stringMatching(/still being folded.*retry/) });
    expect(await toppedUp(balanceId, end)).toBe(0);

    const applied = await untilLoaded('the retried top-up', () => topUp(balanceId, 'k1'));
    expect(applied.statusCode).toBe(201);
    expect(applied.headers['idempotent-replayed']).toBe('false');
    expect(applied.json<{ balance: BalanceView }>().balance.balance).toBe(String(STARTING - HISTORY + 5));
    const replayed = await topUp(balanceId, 'k1');
    expect(replayed.statusCode).toBe(201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(await toppedUp(balanceId, end)).toBe(1);
    expect(readBelow(balanceStreamId(balanceId), end)).toBe(HISTORY);
  });

  it('lets ten clients retrying the same key share one fold: every one is answered, one top-up lands', async () => {
    const { balanceId, end } = await longBalance();
    const answers = await Promise.all(Array.from({ length: 10 }, () => untilLoaded('a shared-key top-up', () => topUp(balanceId, 'shared'))));
    expect(answers.map((answer) => answer.statusCode)).toEqual(Array.from({ length: 10 }, () => 201));
    // One of them applied it; the others were answered its result.
    expect(answers.filter((answer) => answer.headers['idempotent-replayed'] === 'false')).toHaveLength(1);
    expect(await toppedUp(balanceId, end)).toBe(1);
    // However many of their requests waited and were refused, the history was read once.
    expect(readBelow(balanceStreamId(balanceId), end)).toBe(HISTORY);
  });
});
