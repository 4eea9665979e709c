import type { EventStore, ReadStreamOptions, RecordedEvent } from '@tally/event-store';
import pino from 'pino';
import { createBalanceStates } from './balanceStates';
import { BalanceLoadingError } from './ledgerErrors';
import { recordedChargeStream } from './testing/recordedChargeStream';

const BALANCE = 'b-1';
const PAGE = 10;
const HISTORY = 45;
const context = { balanceId: BALANCE, customerId: 'c-1', productId: 'p' };

/** An opened balance and HISTORY charges of 1 credit, as the store would return them. */
function stream(): RecordedEvent[] {
  return recordedChargeStream(context, HISTORY, '2026-01-01T00:00:00.000Z');
}

/**
 * An event store whose every page read waits until the test lets it through: what happens while
 * a load is in flight is decided by the test, never by timing.
 */
function gatedStore() {
  const events = stream();
  const waiting: (() => void)[] = [];
  let pages = 0;
  const store: Pick<EventStore, 'readStream' | 'readStreamsPaged'> = {
    readStreamsPaged: () => {
      throw new Error('current() reads one stream at a time');
    },
    async readStream(_streamId, options: ReadStreamOptions = {}) {
      pages += 1;
      await new Promise<void>((resolve) => waiting.push(resolve));
      const from = Number(options.fromRevision ?? 0n);
      return events.slice(from, from + (options.maxCount ?? events.length));
    },
  };
  /** Lets the page reads through, one at a time, until `until()` holds or none is waiting. */
  async function release(until: () => boolean = () => false): Promise<void> {
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (until()) return;
      const next = waiting.shift();
      if (next === undefined) return;
      next();
    }
  }
  return { store, release, pages: () => pages, end: BigInt(events.length - 1) };
}

function recordingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, lines };
}

describe('BalanceStates.current', () => {
  it('shares one load among concurrent callers of one balance', async () => {
    const gated = gatedStore();
    const states = createBalanceStates({ eventStore: gated.store, logger: pino({ level: 'silent' }), pageEvents: PAGE });
    const loads = [states.current(BALANCE), states.current(BALANCE), states.current(BALANCE)];
    await gated.release();
    const loaded = await Promise.all(loads);
    expect(loaded.map((state) => state.revision)).toEqual([gated.end, gated.end, gated.end]);
    // One fold: the stream's pages once (the last one short), not once per caller.
    expect(gated.pages()).toBe(Math.ceil((HISTORY + 1) / PAGE));
  });

  it('gives up waiting at the signal with BalanceLoadingError, while the load goes on and keeps its result', async () => {
    const gated = gatedStore();
    const states = createBalanceStates({ eventStore: gated.store, logger: pino({ level: 'silent' }), pageEvents: PAGE });
    const budget = new AbortController();
    const waiting = states.current(BALANCE, undefined, undefined, { signal: budget.signal });
    await gated.release(() => gated.pages() >= 2);
    budget.abort(new Error('budget spent'));
    const refusal = await waiting.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(BalanceLoadingError);
    expect((refusal as Error).message).toMatch(/still being folded \(10 events read so far\)/);

    // Nobody waits any more; the fold still runs to the end, and the next caller joins it.
    const retry = states.current(BALANCE);
    await gated.release();
    expect((await retry).revision).toBe(gated.end);
    const pagesOfTheFold = gated.pages();
    expect(pagesOfTheFold).toBe(Math.ceil((HISTORY + 1) / PAGE));

    // Cached: the next load reads only after the end.
    const cached = states.current(BALANCE);
    await gated.release();
    expect((await cached).revision).toBe(gated.end);
    expect(gated.pages()).toBe(pagesOfTheFold + 1);
  });

  it('abandons the load at its next page on close, telling its waiters to retry and logging what nobody waits for', async () => {
    const gated = gatedStore();
    const { logger, lines } = recordingLogger();
    // Progress is kept every 20 events folded: what the abandoned fold had done is not lost.
    const kept: bigint[] = [];
    const stateStore = { load: async () => undefined, loadLatest: async () => new Map(), save: async (states: readonly { loaded: { revision: bigint } }[]) => void kept.push(...states.map((state) => state.loaded.revision)) };
    const states = createBalanceStates({ eventStore: gated.store, stateStore, logger, pageEvents: PAGE, snapshotAfterEvents: 20 });
    // Its outcome is taken at once: it settles while close() is awaited below.
    const patient = states.current(BALANCE).then(
      () => undefined,
      (error: unknown) => error,
    );
    const budget = new AbortController();
    const other = createBalanceStates({ eventStore: gated.store, logger, pageEvents: PAGE });
    const impatient = other.current(BALANCE, undefined, undefined, { signal: budget.signal });
    // Three pages of the first fold (it asked first, so its pages come first), one of the other's.
    await gated.release(() => kept.length > 0 && gated.pages() >= 4);
    budget.abort(new Error('budget spent'));
    await expect(impatient).rejects.toBeInstanceOf(BalanceLoadingError);

    const closed = Promise.all([states.close(), other.close()]);
    await gated.release();
    await closed;
    expect(await patient).toMatchObject({ code: 'balance_loading', message: expect.stringMatching(/stopping/) });
    // Both folds stopped after the page in hand, long before the stream's end, the first having
    // kept a snapshot after its second page (revision 19: events 0 to 19).
    expect(gated.pages()).toBeLessThan(7);
    expect(kept).toEqual([19n]);
    // The impatient one's fold had nobody waiting: its end is logged, not thrown into the void.
    expect(lines.filter((line) => line.msg === 'balance load abandoned at shutdown')).toHaveLength(1);
  });

  it('refuses at once after close, without reading anything, whatever is left of the caller’s budget', async () => {
    const gated = gatedStore();
    let loads = 0;
    const stateStore = {
      load: async () => {
        loads += 1;
        return undefined;
      },
      loadLatest: async () => new Map(),
      save: async () => undefined,
    };
    const states = createBalanceStates({ eventStore: gated.store, stateStore, logger: pino({ level: 'silent' }), pageEvents: PAGE });
    await states.close();
    // A budget never spent (only the refusal can settle the call), and one spent before the call.
    for (const signal of [new AbortController().signal, AbortSignal.abort(new Error('budget spent'))]) {
      const refusal = await states.current(BALANCE, undefined, undefined, { signal }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refusal).toMatchObject({ code: 'balance_loading', message: expect.stringMatching(/stopping.*after 0 events/) });
    }
    expect(loads).toBe(0);
    expect(gated.pages()).toBe(0);
  });
});
