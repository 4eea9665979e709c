import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, formatCredits, MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore, type EventStore, type ReadStreamOptions } from '@tally/event-store';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { BalanceLoadingError } from './ledgerErrors';
import { createLedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import { createPostgresBalanceStateStore } from './postgresBalanceStateStore';
import { appendChargeHistory } from './testing/appendChargeHistory';

jest.setTimeout(300_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;
/** Long enough that folding it (40 pages of 1,000, each a query) outlasts a budget of a few ms by far. */
const HISTORY = 40_000;
const STARTING = 1_000_000;
/** The budget of the impatient processes: any fold of HISTORY events takes longer. */
const TINY_BUDGET_MS = 20;
/** The revision an opening ends at (its events come before the history); set by the first longBalance. */
let opened = 0n;

/**
 * The event store with the reads of one "process" counted, by the revision they start at:
 * whether the history was folded once or more is a count, never a time.
 */
function countingEventStore(inner: EventStore) {
  const reads: { fromRevision: bigint; events: number }[] = [];
  let appends = 0;
  const store: EventStore = {
    ...inner,
    async readStream(streamId, options: ReadStreamOptions = {}) {
      const events = await inner.readStream(streamId, options);
      reads.push({ fromRevision: options.fromRevision ?? 0n, events: events.length });
      return events;
    },
    async appendMany(requests, options) {
      appends += 1;
      return inner.appendMany(requests, options);
    },
    async appendExclusively(work) {
      appends += 1;
      return inner.appendExclusively(work);
    },
  };
  return {
    store,
    /** Events read by reads that started within the history (after the opening). */
    historyRead: () => reads.filter((read) => read.fromRevision <= opened + BigInt(HISTORY)).reduce((sum, read) => sum + read.events, 0),
    appends: () => appends,
  };
}

/** Collects unhandled rejections while a test runs: a background fold's failure must never be one. */
function watchUnhandledRejections() {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  return {
    seen,
    stop: () => process.off('unhandledRejection', listener),
  };
}

describe('a write on a long balance within its load budget', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'load_budget', max: 12 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** A ledger service as one API process has it: its own cache, the shared snapshot table, a counted event store. */
  function ledgerProcess(loadBudgetMs?: number) {
    const counted = countingEventStore(eventStore);
    const ledger = createLedgerService({
      eventStore: counted.store,
      catalog,
      balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }),
      logger,
      stateStore: createPostgresBalanceStateStore({ pool: db.pool }),
      ...(loadBudgetMs !== undefined ? { loadBudgetMs } : {}),
    });
    return { ledger, ...counted };
  }

  /** A balance opened (with its snapshot at the opening) and HISTORY usage charges after it, appended in big batches. */
  async function longBalance(): Promise<string> {
    const customerId = `c_${randomUUID()}`;
    const { balance, events: opening } = await ledgerProcess().ledger.openBalance({ customerId, productId: 'p', startingBalance: credits(STARTING) });
    opened = opening.at(-1)!.revision;
    const context = { balanceId: balance.balanceId, customerId, productId: 'p' };
    await appendChargeHistory(eventStore, context, { after: opened, count: HISTORY, startingBalance: credits(STARTING), batch: 5_000 });
    return balance.balanceId;
  }

  /** Sends the same top-up until it is no longer refused as loading; any other failure fails the test. */
  async function topUpUntilLoaded(send: () => Promise<{ replayed: boolean; balance: { balance: bigint } }>) {
    return waitFor(
      async () => {
        try {
          return await send();
        } catch (error) {
          if (error instanceof BalanceLoadingError) return false;
          throw error;
        }
      },
      { description: 'the retried top-up to find the balance loaded', timeoutMs: 120_000, intervalMs: 20 },
    );
  }

  async function toppedUp(balanceId: string): Promise<number> {
    const tail = await eventStore.readStream(balanceStreamId(balanceId), { fromRevision: opened + BigInt(HISTORY) + 1n });
    return tail.filter((event) => event.type === 'CreditToppedUp').length;
  }

  it('refuses a write whose state is still loading with a transient error, appending nothing, and keeps folding in the background', async () => {
    const balanceId = await longBalance();
    const rejections = watchUnhandledRejections();
    try {
      const api = ledgerProcess(TINY_BUDGET_MS);
      const request = () => api.ledger.topUp(balanceId, { credits: credits(5), reason: 'retry me' }, { idempotencyKey: 'k1', requestHash: 'h1' });
      const refusal = await request().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toBeInstanceOf(BalanceLoadingError);
      expect(refusal).toMatchObject({ code: 'balance_loading', retriable: true });
      expect((refusal as Error).message).toMatch(/still being folded.*retry/);
      expect(api.appends()).toBe(0);

      // Nobody waits for it any more, yet the fold goes on to the end and keeps a snapshot there.
      const stateStore = createPostgresBalanceStateStore({ pool: db.pool });
      await waitFor(async () => ((await stateStore.load(balanceId))?.revision ?? -1n) >= opened + BigInt(HISTORY), {
        description: 'the background fold to keep its snapshot',
        timeoutMs: 120_000,
        intervalMs: 20,
      });

      // The client's retry with the same key applies once, from the state the fold left.
      const applied = await topUpUntilLoaded(request);
      expect(applied.replayed).toBe(false);
      expect(formatCredits(applied.balance.balance)).toBe(String(STARTING - HISTORY + 5));
      const again = await request();
      expect(again.replayed).toBe(true);
      expect(await toppedUp(balanceId)).toBe(1);
      // The history was folded once: the refused request's fold, finished in the background.
      expect(api.historyRead()).toBe(HISTORY);
      expect(rejections.seen).toEqual([]);
    } finally {
      rejections.stop();
    }
  });

  it('lets concurrent writes on one balance share one fold, and applies a retried key once', async () => {
    const balanceId = await longBalance();
    const api = ledgerProcess(TINY_BUDGET_MS);
    // Ten clients, each with its own key, each retrying its 503s (the same key every time).
    const clients = Array.from({ length: 10 }, (_, i) =>
      topUpUntilLoaded(() => api.ledger.topUp(balanceId, { credits: credits(1), reason: `client ${i}` }, { idempotencyKey: `client-${i}`, requestHash: 'h' })),
    );
    const results = await Promise.all(clients);
    expect(results.every((result) => !result.replayed)).toBe(true);
    expect(await toppedUp(balanceId)).toBe(10);
    // However many requests waited and were refused meanwhile, the history was read once.
    expect(api.historyRead()).toBe(HISTORY);
    const final = await ledgerProcess().ledger.getBalance(balanceId);
    expect(formatCredits(final.balance.balance)).toBe(String(STARTING - HISTORY + 10));
  });

  it('waits as long as the fold takes without a budget, folding once for concurrent writers', async () => {
    const balanceId = await longBalance();
    const patient = ledgerProcess(0);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => patient.ledger.topUp(balanceId, { credits: credits(1), reason: `patient ${i}` }, { idempotencyKey: `p-${i}`, requestHash: 'h' })),
    );
    expect(results.every((result) => !result.replayed)).toBe(true);
    expect(patient.historyRead()).toBe(HISTORY);
    expect(await toppedUp(balanceId)).toBe(5);
  });

  it("stops a read's wait for the balance's state at the caller's signal, the fold going on for the retry", async () => {
    const balanceId = await longBalance();
    const rejections = watchUnhandledRejections();
    try {
      // No budget of its own: only the caller's signal (the API's deadline for the read) ends the wait.
      const api = ledgerProcess(0);
      const refusal = await api.ledger.getBalance(balanceId, { signal: AbortSignal.timeout(TINY_BUDGET_MS) }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toBeInstanceOf(BalanceLoadingError);
      expect((refusal as Error).message).toMatch(/still being folded \(\d+ events read so far\).*retry/);
      expect(api.historyRead()).toBeLessThan(HISTORY);
      // A signal aborted before the call is refused as well, joining the fold without waiting for it.
      await expect(api.ledger.getBalance(balanceId, { signal: AbortSignal.abort(new Error('gone')) })).rejects.toBeInstanceOf(BalanceLoadingError);

      // The retry finds the shared fold (or its result): the history is read once.
      const read = await api.ledger.getBalance(balanceId);
      expect(formatCredits(read.balance.balance)).toBe(String(STARTING - HISTORY));
      expect(api.historyRead()).toBe(HISTORY);
      expect(rejections.seen).toEqual([]);
    } finally {
      rejections.stop();
    }
  });

  it('abandons a background fold at close, cleanly: its waiters and later writes are told to retry', async () => {
    const balanceId = await longBalance();
    const rejections = watchUnhandledRejections();
    try {
      const api = ledgerProcess(TINY_BUDGET_MS);
      const request = () => api.ledger.topUp(balanceId, { credits: credits(5), reason: 'stopping' }, { idempotencyKey: 'stop', requestHash: 'h' });
      await expect(request()).rejects.toBeInstanceOf(BalanceLoadingError);
      // Resolves once the fold has ended, at its next page: nothing runs on behind the process.
      await api.ledger.close();
      const readAtClose = api.historyRead();
      expect(readAtClose).toBeLessThan(HISTORY);
      await expect(request()).rejects.toMatchObject({ code: 'balance_loading', message: expect.stringMatching(/stopping/) });
      expect(api.historyRead()).toBe(readAtClose);
      expect(api.appends()).toBe(0);
      expect(await toppedUp(balanceId)).toBe(0);
      expect(rejections.seen).toEqual([]);
    } finally {
      rejections.stop();
    }
  });
});
