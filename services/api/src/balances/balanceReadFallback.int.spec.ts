import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, creditProductFromDto, MICROS_PER_CREDIT, type BalanceEvent } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPurchaseService,
  toEventsToAppend,
  type BalanceRegistry,
  type BalanceStateStore,
  type LedgerService,
} from '@tally/ledger';
import { createMetricsRegistry } from '@tally/metrics';
import { createBalanceReadModel } from '@tally/projections';
import { countingEventStore, createTestSchema, stackConfig, uniqueName, waitFor, type CountingEventStore, type TestSchema } from '@tally/test-support';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { buildApp } from '../buildApp';
import type { BalanceView } from './balanceView';

jest.setTimeout(300_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const KEY = 'test-key-0123456789abcdef';
const PRODUCT = 'api';
const STARTING = 1_000_000;

/**
 * Issue: a balance the read model does not hold (opened a moment ago, or Redis being rebuilt) was
 * folded from its whole stream on every read, each read on its own: 2 s for 100,000 events, and
 * ten concurrent reads 13 s. Reads now fold through the ledger's state path (its stored state
 * plus the tail, one load shared by concurrent readers and writers) within the load budget.
 */
describe('a balance read the read model cannot answer', () => {
  let db: TestSchema;
  let redis: Redis;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let balanceRegistry: BalanceRegistry;
  let stateStore: BalanceStateStore;
  /** Opens balances and keeps stored states, as the rest of the deployment would. */
  let elsewhere: LedgerService;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'balance_read_fallback', max: 12 });
    redis = new Redis(stackConfig.redisUrl);
    eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: uniqueName('fallback') });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    stateStore = createPostgresBalanceStateStore({ pool: db.pool });
    await catalog.createProduct(creditProductFromDto({ id: PRODUCT, name: 'API calls', description: '', bundles: [], consumption: [], lowBalanceThreshold: null }));
    elsewhere = createLedgerService({ eventStore, catalog, balanceRegistry, logger, stateStore });
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await elsewhere?.close();
    await eventStore?.close();
    await redis?.quit();
    await db?.drop();
  });

  /** An API process of its own (its ledger's cache empty), over a read model no projector writes. */
  async function startApi(options: { balanceLoadBudgetMs?: number } = {}): Promise<{ call: (url: string) => Promise<LightMyRequestResponse>; counting: CountingEventStore }> {
    const counting = countingEventStore(eventStore);
    const ledger = createLedgerService({ eventStore: counting.store, catalog, balanceRegistry, logger, stateStore });
    const app = await buildApp({
      catalog,
      balanceRegistry,
      ledger,
      balances: createBalanceReadModel({ redis, keyPrefix: uniqueName('fallback') }),
      eventStore: counting.store,
      apiKeys: [KEY],
      logger,
      health: async () => ({}),
      metrics: createMetricsRegistry(),
      purchases: createPurchaseService({ catalog, balanceRegistry, ledger }),
      options,
    });
    apps.push(app);
    app.addHook('onClose', () => ledger.close());
    return { call: (url) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${KEY}` } }), counting };
  }

  /** A balance with `events` usage charges after its opening, appended in big batches; its end revision. */
  async function longBalance(events: number): Promise<{ balanceId: string; customerId: string; end: bigint }> {
    const customerId = `cus_${randomUUID()}`;
    const opened = await elsewhere.openBalance({ customerId, productId: PRODUCT, startingBalance: BigInt(STARTING) * MICROS_PER_CREDIT });
    const balanceId = opened.balance.balanceId;
    const end = await charge(balanceId, customerId, opened.revision, 0, events);
    return { balanceId, customerId, end };
  }

  /** Appends `events` charges of 1 credit after `end`, the `done`-th on; the new end revision. */
  async function charge(balanceId: string, customerId: string, end: bigint, done: number, events: number): Promise<bigint> {
    const context = { balanceId, customerId, productId: PRODUCT };
    const occurredAt = new Date().toISOString();
    const micros = (n: number) => BigInt(n) * MICROS_PER_CREDIT;
    for (let from = 0; from < events; from += 5_000) {
      const count = Math.min(5_000, events - from);
      const batch: BalanceEvent[] = Array.from({ length: count }, (_, i) => ({
        type: 'CreditConsumed',
        credits: micros(1),
        source: 'manual',
        reason: 'history',
        usage: null,
        balanceAfter: micros(STARTING - done - from - i - 1),
        heldAfter: 0n,
        occurredAt,
      }));
      const [appended] = await eventStore.appendMany([
        { streamId: balanceStreamId(balanceId), expectedRevision: end, events: toEventsToAppend(batch, context, `history:${randomUUID()}`) },
      ]);
      end = appended!.nextExpectedRevision;
    }
    return end;
  }

  const positionAt = async (balanceId: string, revision: bigint) =>
    (await eventStore.readStream(balanceStreamId(balanceId), { fromRevision: revision, maxCount: 1 }))[0]!.position.toString();

  it('reads only the stream after its stored state, once for two concurrent requests', async () => {
    const HISTORY = 20_000;
    const TAIL = 1_500;
    const { balanceId, customerId, end: kept } = await longBalance(HISTORY);
    // Another process folded it and kept its state (a load of 10,000 events or more keeps one).
    await elsewhere.getBalance(balanceId);
    expect((await stateStore.load(balanceId))?.revision).toBe(kept);
    const end = await charge(balanceId, customerId, kept, HISTORY, TAIL);

    const { call, counting } = await startApi();
    const answers = await Promise.all([call(`/v1/credit-balances/${balanceId}`), call(`/v1/credit-balances/${balanceId}`)]);
    for (const answer of answers) {
      expect(answer.statusCode).toBe(200);
      expect(answer.json<BalanceView>()).toMatchObject({ id: balanceId, balance: String(STARTING - HISTORY - TAIL), position: await positionAt(balanceId, end) });
    }
    // The tail once, and one event each for the position the answer is given at: nothing before the stored state.
    expect(counting.reads.filter((read) => read.fromRevision <= kept).reduce((sum, read) => sum + read.events, 0)).toBe(0);
    expect(counting.eventsRead()).toBe(TAIL + 2);
  });

  it('answers 503 balance_loading with Retry-After when the fold outlasts the budget, and the retry is served from that fold', async () => {
    const HISTORY = 40_000;
    const { balanceId, end } = await longBalance(HISTORY);
    const { call, counting } = await startApi({ balanceLoadBudgetMs: 20 });
    const first = await call(`/v1/credit-balances/${balanceId}`);
    expect(first.statusCode).toBe(503);
    expect(first.headers['retry-after']).toBe('1');
    expect(first.json()).toEqual({ error: 'balance_loading', message: expect.stringMatching(/still being folded.*retry/) });

    const served = await waitFor(
      async () => {
        const answer = await call(`/v1/credit-balances/${balanceId}`);
        return answer.statusCode === 503 && answer.json<{ error: string }>().error === 'balance_loading' ? false : answer;
      },
      { description: 'the read to be answered other than balance_loading', timeoutMs: 120_000, intervalMs: 20 },
    );
    expect(served.statusCode).toBe(200);
    expect(served.json<BalanceView>()).toMatchObject({ balance: String(STARTING - HISTORY), position: await positionAt(balanceId, end) });
    // However many requests were refused meanwhile, the history after the opening (whose state the
    // ledger kept when it opened the balance) was read once.
    const history = counting.reads.filter((read) => read.streamId === balanceStreamId(balanceId) && read.maxCount !== 1);
    expect(history.reduce((sum, read) => sum + read.events, 0)).toBe(HISTORY);
  });
});
