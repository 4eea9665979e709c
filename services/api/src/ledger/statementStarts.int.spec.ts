import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceStreamId, MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  createLedgerService,
  createPostgresBalanceRegistry,
  createPostgresBalanceStateStore,
  createPostgresStatementStarts,
  type LedgerService,
  type RecordedBalanceEvent,
} from '@tally/ledger';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createLedgerHistory, type LedgerHistory } from './ledgerHistory';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;

describe('statements that start where an earlier one found its edges (PostgreSQL)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let ledger: LedgerService;
  /**
   * The ledger, counting the entries statements read, in pages of `pageLimit` at most (one entry,
   * unless a test says otherwise, so `read` stops at the first entry past a period, where a
   * statement does), calling `onPage` after each.
   */
  let read = 0;
  let pageLimit = 1;
  let onPage = () => {};
  let counted: LedgerService;
  let withStarts: LedgerHistory;
  let fromTheStart: LedgerHistory;
  /** As the API keeps them: the starts of UTC days only, and others far enough apart. */
  let atMidnights: LedgerHistory;
  /** No instant kept for itself: a start every 3 entries at least. */
  let everyThird: LedgerHistory;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'statement_starts' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger });
    counted = {
      ...ledger,
      readLedger: async (balanceId, page) => {
        const answer = await ledger.readLedger(balanceId, { ...page, limit: Math.min(page.limit, pageLimit) });
        read += answer.items.length;
        onPage();
        return answer;
      },
    };
    const statementStarts = createPostgresStatementStarts({ pool: db.pool, states: createPostgresBalanceStateStore({ pool: db.pool }) });
    // Every edge kept: the entries here are recorded now, a few milliseconds apart, not at midnights.
    withStarts = createLedgerHistory({ ledger: counted, balanceRegistry, statementStarts, logger, keepsStatementStart: () => true });
    fromTheStart = createLedgerHistory({ ledger, balanceRegistry });
    atMidnights = createLedgerHistory({ ledger: counted, balanceRegistry, statementStarts, logger });
    everyThird = createLedgerHistory({ ledger: counted, balanceRegistry, statementStarts, logger, keepsStatementStart: () => false, statementStartsEvery: 3 });
  });

  afterEach(() => {
    pageLimit = 1;
    onPage = () => {};
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** A balance with `changes` top-ups after its opening, and its entries oldest first. */
  let customers = 0;
  async function balanceWith(changes: number): Promise<{ balanceId: string; entries: readonly RecordedBalanceEvent[] }> {
    customers += 1;
    const { balance } = await ledger.openBalance({ customerId: `c-${customers}`, productId: 'p', startingBalance: credits(1) });
    for (let n = 1; n <= changes; n += 1) {
      // A millisecond apart at least, so each change can be a period's edge of its own.
      const last = (await ledger.readLedger(balance.balanceId, { limit: 1 })).items[0]!.recordedAt.getTime();
      while (Date.now() <= last) await new Promise((resolve) => setImmediate(resolve));
      await ledger.topUp(balance.balanceId, { credits: credits(n), reason: null });
    }
    const { items } = await ledger.readLedger(balance.balanceId, { limit: 1000, order: 'oldest' });
    return { balanceId: balance.balanceId, entries: items };
  }

  const boundariesOf = async (balanceId: string) =>
    (
      await db.pool.query<{ boundary: Date; revision: string }>('SELECT boundary, revision FROM statement_boundaries WHERE stream_id = $1 ORDER BY boundary', [
        balanceStreamId(balanceId),
      ])
    ).rows.map(({ boundary, revision }) => [boundary.getTime(), Number(revision)]);

  it('states each period as a fold from the first entry does, reading only from the latest start kept at or before it', async () => {
    // Revisions 0 and 1 (the opening and its starting top-up), then 2 to 9.
    const { balanceId, entries } = await balanceWith(8);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    const statement = async (from: number, to: number) => {
      read = 0;
      const stated = await withStarts.statement(balanceId, { from, to });
      expect(stated).toEqual(await fromTheStart.statement(balanceId, { from, to }));
      return { stated, read };
    };

    // The first statement reads from the ledger's start to the first entry past the period, and
    // keeps both edges.
    expect(await statement(at(4), at(6))).toMatchObject({ stated: { entries: 2, firstRevision: 4n, lastRevision: 5n }, read: 7 });
    expect(await boundariesOf(balanceId)).toEqual([
      [at(4), 4],
      [at(6), 6],
    ]);
    // The next period reads from where that one ended: revisions 6 to 8.
    expect(await statement(at(6), at(8))).toMatchObject({ stated: { entries: 2, firstRevision: 6n }, read: 3 });
    expect(await boundariesOf(balanceId)).toEqual([
      [at(4), 4],
      [at(6), 6],
      [at(8), 8],
    ]);
    // The same period again: begun opened at the start kept at its start, and ended at the one
    // kept at its end (the first entry at or after it, 8): nothing read, nothing new kept.
    expect(await statement(at(6), at(8))).toMatchObject({ read: 0 });
    expect(await boundariesOf(balanceId)).toHaveLength(3);
    // A period between two edges starts at the one before it: revisions 4 to 7.
    expect(await statement(at(5), at(7))).toMatchObject({ stated: { entries: 2, firstRevision: 5n }, read: 4 });
    // So far: every entry from the edge at 8.
    expect(await statement(at(9), at(9) + 60_000)).toMatchObject({ stated: { entries: 1, lastRevision: 9n }, read: 2 });
    // Before every edge kept: from the start again, to revision 3.
    expect(await statement(at(2), at(3))).toMatchObject({ stated: { entries: 1 }, read: 4 });
  });

  it('reads a long period to its opening and on from the start kept before its end, whose sums total the entries between', async () => {
    // Revisions 0 to 13.
    const { balanceId, entries } = await balanceWith(12);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    // A period after every entry: read from the start, keeping starts on the way at 3, 6, 9 and 12.
    await everyThird.statement(balanceId, { from: at(13) + 1, to: at(13) + 2 });
    expect((await boundariesOf(balanceId)).map(([, revision]) => revision)).toEqual([3, 6, 9, 12]);
    read = 0;
    const period = { from: at(2), to: at(13) };
    const stated = await everyThird.statement(balanceId, period);
    expect(stated).toEqual(await fromTheStart.statement(balanceId, period));
    expect(stated).toMatchObject({ entries: 11, firstRevision: 2n, lastRevision: 12n });
    // Revisions 0 to 2 (the opening), then 12 and 13 (the first past the period): not 3 to 11.
    expect(read).toBe(5);
  });

  it('seeks the opening in small pages when a start before the end is kept: what lies past the opening is not read whole', async () => {
    // Revisions 0 to 300, in pages as the API reads them.
    const { balanceId, entries } = await balanceWith(299);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    pageLimit = 1000;
    // Keeps starts at 2 and at 290.
    await withStarts.statement(balanceId, { from: at(2), to: at(290) });
    read = 0;
    // From an instant with no start: from the one at 2 to the opening at 10, then the skip to the
    // start at its end, which ends it. A first page of 1,000 would have read every entry from 2 on.
    expect(await withStarts.statement(balanceId, { from: at(10), to: at(290) })).toEqual(await fromTheStart.statement(balanceId, { from: at(10), to: at(290) }));
    expect(read).toBeGreaterThanOrEqual(8);
    expect(read).toBeLessThan(200);
  });

  it.each([
    ['its row kept without sums (as before migration 034)', 'UPDATE statement_boundaries SET totals = NULL WHERE stream_id = $1'],
    ['the state before it gone (another fold version)', 'DELETE FROM balance_snapshots WHERE stream_id = $1'],
  ])('does not start from an edge with %s: reads from the start, and keeps it whole again', async (_, takeAway) => {
    const { balanceId, entries } = await balanceWith(4);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    await withStarts.statement(balanceId, { from: at(3), to: at(5) });
    await db.pool.query(takeAway, [balanceStreamId(balanceId)]);
    read = 0;
    expect(await withStarts.statement(balanceId, { from: at(3), to: at(5) })).toEqual(await fromTheStart.statement(balanceId, { from: at(3), to: at(5) }));
    expect(read).toBe(6);
    const { rows } = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM statement_boundaries WHERE stream_id = $1 AND totals IS NOT NULL', [balanceStreamId(balanceId)]);
    expect(rows[0]!.n).toBe('2');
    // Begun opened at the start kept at 3, and ended at the one kept at its end (5): nothing read.
    read = 0;
    expect(await withStarts.statement(balanceId, { from: at(3), to: at(5) })).toEqual(await fromTheStart.statement(balanceId, { from: at(3), to: at(5) }));
    expect(read).toBe(0);
  });

  it('keeps only the starts of UTC days by default, and starts from them all the same', async () => {
    const { balanceId, entries } = await balanceWith(3);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    // Instants of no day's start: stated, nothing kept.
    await atMidnights.statement(balanceId, { from: at(2), to: at(4) });
    expect(await boundariesOf(balanceId)).toEqual([]);
    // A start kept (as by a statement of a calendar month) serves a statement of any instant after it.
    await withStarts.statement(balanceId, { from: at(3), to: at(4) + 1 });
    expect(await boundariesOf(balanceId)).toEqual([[at(3), 3]]);
    read = 0;
    expect(await atMidnights.statement(balanceId, { from: at(3), to: at(4) })).toEqual(await fromTheStart.statement(balanceId, { from: at(3), to: at(4) }));
    expect(read).toBe(2);
    expect(await boundariesOf(balanceId)).toEqual([[at(3), 3]]);
  });

  it('keeps a start every so many entries it reads, whatever instants it is asked for, and the next statement reads from the latest', async () => {
    // Revisions 0 to 13, a millisecond apart at least.
    const { balanceId, entries } = await balanceWith(12);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    // A page an entry: `read` counts up to the first entry past the period, where a statement stops.
    pageLimit = 1;
    const statement = async (from: number, to: number) => {
      read = 0;
      const stated = await everyThird.statement(balanceId, { from, to });
      expect(stated).toEqual(await fromTheStart.statement(balanceId, { from, to }));
      return read;
    };
    // Instants between entries (no entry's own, no midnight), as a billing day at 09:00 would be.
    expect(await statement(at(11) - 1, at(12) - 1)).toBe(13);
    const kept = await boundariesOf(balanceId);
    // On the way, the first entry 3 or more after the previous start recorded after all before it
    // (3, 6, 9); the period's start is 2 on from 9's (not kept), its end 3 on (kept).
    expect(kept.map(([, revision]) => revision)).toEqual([3, 6, 9, 12]);
    for (const [instant, revision] of kept) expect(entries.findIndex((entry) => entry.recordedAt.getTime() >= instant!)).toBe(revision);
    // A period a little earlier reads from the start kept before it: revisions 9 to 11.
    expect(await statement(at(10) - 1, at(11) - 1)).toBe(3);
    // The first period again from there: revisions 9 to 12, and nothing new kept.
    expect(await statement(at(11) - 1, at(12) - 1)).toBe(4);
    // The next period from its end: revisions 12 and 13.
    expect(await statement(at(12) - 1, at(13) + 1)).toBe(2);
    expect(await boundariesOf(balanceId)).toEqual(kept);
  });

  it('keeps the starts it found when a statement is given up half way, and the next one reads from them', async () => {
    const { balanceId, entries } = await balanceWith(12);
    const at = (revision: number) => entries[revision]!.recordedAt.getTime();
    const controller = new AbortController();
    // Pages of 4 entries; the client goes away after the second.
    pageLimit = 4;
    let pages = 0;
    onPage = () => {
      pages += 1;
      if (pages === 2) controller.abort(new Error('the client went away'));
    };
    await expect(everyThird.statement(balanceId, { from: at(13), to: at(13) + 1 }, controller.signal)).rejects.toThrow('the client went away');
    // Revisions 0 to 3 were folded (the second page was not), and the start at 3 was kept.
    expect((await boundariesOf(balanceId)).map(([, revision]) => revision)).toEqual([3]);
    onPage = () => {};
    read = 0;
    expect(await everyThird.statement(balanceId, { from: at(13), to: at(13) + 1 })).toEqual(await fromTheStart.statement(balanceId, { from: at(13), to: at(13) + 1 }));
    expect(read).toBe(11);
  });

  it('keeps no start at the opening entry, and answers an unknown balance 404 as before', async () => {
    const { balanceId, entries } = await balanceWith(1);
    await withStarts.statement(balanceId, { from: 0, to: entries[2]!.recordedAt.getTime() });
    // The period began before the opening: its start is the opening itself, with nothing before it.
    expect(await boundariesOf(balanceId)).toEqual([[entries[2]!.recordedAt.getTime(), 2]]);
    await expect(withStarts.statement('nope', { from: 0, to: Date.now() })).rejects.toThrow('no credit balance with id "nope"');
  });
});
