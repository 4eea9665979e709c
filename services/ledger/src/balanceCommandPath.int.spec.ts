import { randomUUID } from 'node:crypto';
import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, BalanceNotOpenError, formatCredits, MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { countingEventStore, createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { loadBalances } from './balanceLoader';
import { createBalanceCommandPath } from './balanceCommandPath';
import { createBalanceStates } from './balanceStates';
import { createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';
import { createPostgresBalanceStateStore } from './postgresBalanceStateStore';
import { appendChargeHistory } from './testing/appendChargeHistory';

jest.setTimeout(300_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;
const HISTORY = 150_000;
const HISTORY_CHUNK = 25_000;
const STARTING = 1_000_000;
/** The command path reads a balance's tail: a read of whole streams, paged or not, fails the test. */
const TAILS_ONLY = { refuse: { reads: ['readStreams', 'readStreamsPaged'], because: 'the command path must not read whole streams' } } as const;

describe('the balance command path on long, busy streams', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'command_path', max: 12 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** A ledger service as one process has it: its own cache, the shared snapshot table, a counted event store. */
  function process(options: { snapshotVersion?: string; maxAttempts?: number } = {}) {
    const counted = countingEventStore(eventStore, TAILS_ONLY);
    const ledger = createLedgerService({
      eventStore: counted.store,
      catalog,
      balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }),
      logger,
      stateStore: createPostgresBalanceStateStore({ pool: db.pool, ...(options.snapshotVersion ? { version: options.snapshotVersion } : {}) }),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      // What is read is asserted here, not the load budget (balanceLoadBudget.int.spec.ts): a
      // cold fold of the history may take longer than the budget on a loaded machine.
      loadBudgetMs: 0,
    });
    return { ledger, ...counted };
  }

  async function longBalance(): Promise<{ balanceId: string }> {
    const opener = process();
    const customerId = `c_${randomUUID()}`;
    const { balance, events: opening } = await opener.ledger.openBalance({ customerId, productId: 'p', startingBalance: credits(STARTING) });
    const context = { balanceId: balance.balanceId, customerId, productId: 'p' };
    await appendChargeHistory(eventStore, context, { after: opening.at(-1)!.revision, count: HISTORY, startingBalance: credits(STARTING), batch: HISTORY_CHUNK });
    // As the bench does where it loads data: this machine's PostgreSQL runs no autovacuum.
    await db.pool.query('ANALYZE event_log');
    return { balanceId: balance.balanceId };
  }

  /** Another writer deducting 1 credit at a time, back to back, until stopped: as busy as one stream gets. */
  function startWriter(ledger: LedgerService, balanceId: string) {
    let running = true;
    let written = 0;
    const done = (async () => {
      while (running) {
        await ledger.deduct(balanceId, { credits: credits(1), reason: 'busy writer' });
        written += 1;
      }
    })();
    return {
      written: () => written,
      async stop() {
        running = false;
        await done;
      },
    };
  }

  it('folds a stream it has no snapshot of a page at a time, and keeps the fold as a snapshot', async () => {
    const { balanceId } = await longBalance();
    const cold = process();
    const result = await cold.ledger.topUp(balanceId, { credits: credits(5), reason: 'cold' });
    expect(formatCredits(result.balance.balance)).toBe(String(STARTING - HISTORY + 5));
    // Memory per write is one page, however long the stream: no read asked for more.
    expect(cold.reads.every((read) => read.maxCount !== undefined && read.maxCount <= 1000)).toBe(true);
    // From the snapshot its opening left (revision 1): the whole history, once.
    expect(cold.eventsRead()).toBe(HISTORY);

    // The next process starts from that snapshot: it reads nothing of the history.
    const warm = process();
    await warm.ledger.topUp(balanceId, { credits: credits(1), reason: 'warm' });
    expect(warm.eventsRead()).toBe(0);
    expect(warm.reads.every((read) => read.fromRevision > BigInt(HISTORY))).toBe(true);
  });

  it('lands writes on a long stream that another writer appends to continuously, reading only the tail', async () => {
    const { balanceId } = await longBalance();
    await process().ledger.topUp(balanceId, { credits: credits(1), reason: 'makes the snapshot' });
    const writerProcess = process();
    const writer = startWriter(writerProcess.ledger, balanceId);
    try {
      await waitFor(() => writer.written() >= 20, { description: 'the other writer to be appending', timeoutMs: 60_000, intervalMs: 10 });
      // A fresh process, whose attempts race the writer's appends: after 3 lost races the
      // fourth holds the other appends back, so each write takes 4 attempts at most.
      const api = process({ maxAttempts: 4 });
      const topUps = 30;
      for (let i = 0; i < topUps; i += 1) {
        const result = await api.ledger.topUp(balanceId, { credits: credits(2), reason: `top-up ${i}` }, { idempotencyKey: `k${i}`, requestHash: 'h' });
        expect(result.replayed).toBe(false);
      }
      // Only the tail: never a revision of the 150,000-event history, in pages, and in total
      // about what the writer appended meanwhile (each conflict re-reads from the state held).
      expect(api.reads.every((read) => read.fromRevision > BigInt(HISTORY))).toBe(true);
      expect(api.reads.every((read) => read.maxCount !== undefined && read.maxCount <= 1000)).toBe(true);
      expect(api.eventsRead()).toBeLessThanOrEqual(writer.written() + topUps);
      expect(api.appends()).toBeLessThanOrEqual(4 * topUps);
    } finally {
      await writer.stop();
    }
    const folded = (await loadBalances(eventStore, [balanceId])).get(balanceId)!;
    const expected = STARTING - HISTORY + 1 + 30 * 2 - writer.written();
    expect(folded.state.status === 'open' && formatCredits(folded.state.balance)).toBe(String(expected));
  });

  it('answers a replayed Idempotency-Key from the snapshot at its revision, reading no events', async () => {
    const { balanceId } = await longBalance();
    const first = process();
    const original = await first.ledger.deduct(balanceId, { credits: credits(3), reason: 'once' }, { idempotencyKey: 'replayed', requestHash: 'h1' });
    for (let i = 0; i < 5; i += 1) await first.ledger.topUp(balanceId, { credits: credits(1), reason: 'later' });

    const other = process();
    const replay = await other.ledger.deduct(balanceId, { credits: credits(3), reason: 'once' }, { idempotencyKey: 'replayed', requestHash: 'h1' });
    expect(replay.replayed).toBe(true);
    expect(replay.balance).toEqual(original.balance);
    expect(replay.events.map((event) => event.eventId)).toEqual(original.events.map((event) => event.eventId));
    expect(other.eventsRead()).toBe(0);
    await expect(
      other.ledger.deduct(balanceId, { credits: credits(4), reason: 'once' }, { idempotencyKey: 'replayed', requestHash: 'h2' }),
    ).rejects.toMatchObject({ code: 'idempotency_key_reused' });
  });

  it('ignores snapshots of another fold or event schema version, folding the stream again', async () => {
    const { balanceId } = await longBalance();
    await process().ledger.topUp(balanceId, { credits: credits(1), reason: 'snapshot at the current version' });
    const otherVersion = process({ snapshotVersion: 'events-v1.fold-v999' });
    const result = await otherVersion.ledger.topUp(balanceId, { credits: credits(1), reason: 'after a fold change' });
    expect(formatCredits(result.balance.balance)).toBe(String(STARTING - HISTORY + 2));
    expect(otherVersion.reads[0]!.fromRevision).toBe(0n);
    expect(otherVersion.eventsRead()).toBeGreaterThan(HISTORY);
  });

  it('decides a batch in order per balance, fails a refused command alone, and appends once', async () => {
    const opener = process();
    const a = await opener.ledger.openBalance({ customerId: `c_${randomUUID()}`, productId: 'p', startingBalance: credits(10) });
    const counted = countingEventStore(eventStore, TAILS_ONLY);
    const path = createBalanceCommandPath({ eventStore: counted.store, states: createBalanceStates({ eventStore: counted.store, logger }), logger });
    const context = { balanceId: a.balance.balanceId, customerId: a.balance.customerId, productId: 'p' };
    const unopened = { balanceId: randomUUID(), customerId: 'nobody', productId: 'p' };
    const at = new Date().toISOString();
    const outcomes = await path.execute([
      { context, commandId: `t:${randomUUID()}`, command: { type: 'TopUp', credits: credits(5), source: 'manual', reason: null, at } },
      { context: unopened, commandId: `d:${randomUUID()}`, command: { type: 'DeductManually', credits: credits(1), reason: null, at } },
      { context, commandId: `d:${randomUUID()}`, command: { type: 'DeductManually', credits: credits(2), reason: null, at } },
    ]);
    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true, false, true]);
    expect(!outcomes[1]!.ok && outcomes[1]!.error).toBeInstanceOf(BalanceNotOpenError);
    const topUp = outcomes[0]!;
    const deduction = outcomes[2]!;
    expect(topUp.ok && deduction.ok && [topUp.revision, deduction.revision]).toEqual([2n, 3n]);
    expect(deduction.ok && deduction.state.status === 'open' && formatCredits(deduction.state.balance)).toBe('13');
    expect(counted.appends()).toBe(1);
  });

  it('answers a command stored already as the replay it is, though the caller vouched for earlier runs', async () => {
    const opener = process();
    const { balance } = await opener.ledger.openBalance({ customerId: `c_${randomUUID()}`, productId: 'p', startingBalance: credits(10) });
    const context = { balanceId: balance.balanceId, customerId: balance.customerId, productId: 'p' };
    const at = new Date().toISOString();
    const first = { context, commandId: `d:${randomUUID()}`, command: { type: 'DeductManually' as const, credits: credits(1), reason: null, at } };
    const second = { context, commandId: `d:${randomUUID()}`, command: { type: 'DeductManually' as const, credits: credits(2), reason: null, at } };
    // Stored by another writer (the caller's check for earlier runs missed it).
    const earlier = createBalanceCommandPath({ eventStore, states: createBalanceStates({ eventStore, logger }), logger });
    expect((await earlier.execute([first]))[0]!.ok).toBe(true);

    // A caller that vouches for earlier runs sends both, unmarked (marked, the append refuses
    // stored events outright: StoredWithoutMarkerError, the event store's conformance suite):
    // the append finds the first one's events stored beside the second's new ones, which it
    // reports as a conflict. Decided again on the tail, the same ids would conflict for ever;
    // looked for, the first is the replay it is and the second lands.
    const counted = countingEventStore(eventStore, TAILS_ONLY);
    const path = createBalanceCommandPath({
      eventStore: counted.store,
      // Loaded in one batch (optimistic), which the counting store refuses: appends are what is counted here.
      states: createBalanceStates({ eventStore, logger }),
      logger,
      retry: { maxAttempts: 4 },
    });
    const outcomes = await path.execute([first, second], { earlierRunsChecked: true, optimistic: true, withEvents: false });
    expect(outcomes.map((outcome) => outcome.ok && { replayed: outcome.replayed, appended: outcome.appended })).toEqual([
      { replayed: true, appended: 0 },
      { replayed: false, appended: 1 },
    ]);
    expect(counted.appends()).toBe(2);
    const stream = await eventStore.readStream(balanceStreamId(balance.balanceId));
    expect(stream.filter((event) => event.type === 'CreditConsumed')).toHaveLength(2);
    expect((await opener.ledger.getBalance(balance.balanceId)).balance.balance).toBe(credits(7));
  });
});
