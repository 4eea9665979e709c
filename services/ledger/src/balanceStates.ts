import { balanceStreamId, LruCache, type FoldedBalance } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { abandonable } from '@tally/runtime';
import type { Logger } from 'pino';
import { foldRecorded, loadBalances, NO_STREAM } from './balanceLoader';
import { BalanceLoadingError } from './ledgerErrors';
import type { BalanceStateStore } from './balanceStateStore';
import { createBalanceStateCache } from './balanceStateCache';

/**
 * Where the command path gets a balance's state: the process's bounded cache or the latest
 * stored snapshot, plus the stream's tail after it. Every state handed out is a fold of the
 * stream up to its revision (a cache entry or a snapshot is never more than that), so a stale
 * one costs only a conflict on append, after which the tail is read again.
 */
export interface BalanceStates {
  /**
   * The balance at the stream's end as read now. `known` (a state this caller already holds,
   * e.g. from the attempt that just conflicted) saves the lookup: only events after it are read.
   * `reader` reads that tail instead of the store (an exclusive append's transaction); with it,
   * nothing else is touched (no snapshot is loaded or kept), so give `known` with it.
   *
   * Without `known` and `reader`, concurrent calls for one balance share one load (single
   * flight): ten clients retrying a write on a million-event balance fold its history once.
   * `wait.signal` bounds how long this caller waits for that load: when it aborts first, the call
   * fails with BalanceLoadingError (transient) while the load goes on in the background and keeps
   * its result (cache and snapshot), so the retry finds it done.
   */
  current(
    balanceId: string,
    known?: FoldedBalance,
    reader?: Pick<EventStore, 'readStream'>,
    wait?: { readonly signal?: AbortSignal },
  ): Promise<FoldedBalance>;
  /** The balance exactly at `revision` (an earlier command's last event): what that command answered. */
  at(balanceId: string, revision: bigint): Promise<FoldedBalance>;
  /**
   * Many balances at once, for a batch writer (the metering consumer): a cached state is handed
   * out as it is, without reading the tail (optimistic: a stale one costs a conflict on append,
   * after which current() reads the tail); the others load together, one query for their
   * snapshots and one paged read of their streams, each from after its snapshot (or its start):
   * a balance whose snapshot is at its stream's end reads no event. A missing stream loads as
   * not opened and is not cached, so its opening is seen.
   */
  loadMany(balanceIds: readonly string[]): Promise<Map<string, FoldedBalance>>;
  /**
   * States this process just appended, each with the revision it was appended on (`since`):
   * cached, and kept as snapshots when due (every write, or see snapshotEveryWrite).
   */
  written(balances: readonly { readonly balanceId: string; readonly loaded: FoldedBalance; readonly since?: bigint }[]): Promise<void>;
  /** Drops the cached state (another writer's events make it stale: the next read starts from the snapshot). */
  forget(balanceId: string): void;
  /**
   * Write-behind (snapshotEveryWrite: false): keeps, in one batched write, the states of up to
   * `max` balances this process wrote at least keepAfterLoadEvents events to since their last
   * stored state (the longest-waiting first), and says how many such are still behind; with
   * `all`, of every balance it wrote since its last stored state, however few events, and how
   * many of those are still behind. The metering consumer calls it periodically, and with `all`
   * at a graceful stop (usageConsumer.ts). A no-op with snapshotEveryWrite, or without a stateStore.
   */
  flush(max: number, options?: { readonly all?: boolean }): Promise<{ readonly kept: number; readonly behind: number }>;
  /**
   * Abandons the loads in flight at their next page (their waiters get BalanceLoadingError) and
   * resolves once they have all ended: a stopping process leaves no fold running behind it.
   */
  close(): Promise<void>;
}

export interface BalanceStatesOptions {
  readonly eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged'>;
  /** Without one, states come from the cache or the stream's start. */
  readonly stateStore?: BalanceStateStore;
  readonly logger: Logger;
  /** Balances kept in memory (least recently used go first). Default 10,000. */
  readonly cacheSize?: number;
  /** And at most about this many bytes of them (an estimate of each state's heap size), whichever bound comes first. */
  readonly cacheBytes?: number;
  /** Events read and folded at a time: memory per load is one page, however long the stream. Default 1,000. */
  readonly pageEvents?: number;
  /**
   * A load that had to fold at least this many events keeps its result as a snapshot, so the
   * next process (or this one after eviction) starts there. Default 10,000.
   */
  readonly snapshotAfterEvents?: number;
  /**
   * A load of the latest state (not at()) that had to fold at least this many events keeps its
   * result at once (a replaceable stored state), so that the next cold load reads one row and a
   * short tail; and write-behind (see flush) keeps a balance's state once this process wrote this
   * many events to it since its last one. Default snapshotAfterEvents; the metering consumer uses
   * CONSUMER_KEEP_AFTER_LOAD_EVENTS.
   */
  readonly keepAfterLoadEvents?: number;
  /**
   * Keep a snapshot of every state written (so a replayed command answers from it); default
   * true. False (the metering consumer, which writes each busy balance many times a second and
   * whose replays are answered by markers): a write keeps one only when it takes the stream across
   * a multiple of snapshotAfterEvents, so a balance it grows has a stored state at most that many
   * events behind, for any process that meets it next, at one row per that many events.
   */
  readonly snapshotEveryWrite?: boolean;
}

export function createBalanceStates(options: BalanceStatesOptions): BalanceStates {
  const { eventStore, stateStore } = options;
  const logger = options.logger.child({ module: 'balance-states' });
  const cache = createBalanceStateCache({ maxEntries: options.cacheSize ?? 10_000, ...(options.cacheBytes !== undefined ? { maxBytes: options.cacheBytes } : {}) });
  const pageEvents = options.pageEvents ?? 1000;
  const snapshotAfterEvents = options.snapshotAfterEvents ?? 10_000;
  const snapshotEveryWrite = options.snapshotEveryWrite ?? true;
  const keepAfterLoadEvents = options.keepAfterLoadEvents ?? snapshotAfterEvents;
  if (!Number.isSafeInteger(keepAfterLoadEvents) || keepAfterLoadEvents < 1) throw new RangeError(`keepAfterLoadEvents must be a positive integer; got ${keepAfterLoadEvents}`);
  const keepAfterEvents = BigInt(keepAfterLoadEvents);
  /**
   * Write-behind: the balances whose cached state holds events this process wrote since their
   * last stored state, each with the revision of its first such write, in the order they were
   * marked; `due`, those of them written keepAfterLoadEvents events or more since. Only
   * ids and a revision: the states are read from the cache at flush time, so this costs no more
   * memory than the ids, and it is bounded like the cache (a balance the cache evicted has no
   * state to flush; the oldest ids go first).
   *
   * Only a due balance is worth a row before the process stops: a stored state saves the next
   * process that meets the balance a fold of the events after it, and below keepAfterLoadEvents
   * events that fold costs less than the row (the load's own rule). Keeping every balance written
   * in the interval wrote one row per balance and interval however little it changed: at 100,000
   * customers a third of PostgreSQL's extra work per usage event (docs/benchmarks.md, 2026-12-02
   * late morning). A crash thus leaves a balance at most the interval's events, or fewer than
   * keepAfterLoadEvents written plus fewer than keepAfterLoadEvents a load did not keep, to fold.
   */
  // In lru-cache, which drops its oldest entry in constant time: a Map or Set trimmed from its
  // front (`keys().next()`) walks every slot its deletions left there, and past 100,000 balances
  // written that was 14 % of the consumer's time (docs/benchmarks.md, 2026-12-02 late morning).
  // Only peek() reads them, so their order stays the order of marking. Past the bound the
  // longest-waiting id goes (most likely evicted from the cache already; at worst its next load
  // folds the events since its last stored state, bounded by snapshotAfterEvents), and from `due`
  // too, which thus never holds more.
  const maxBehind = Math.max(1, options.cacheSize ?? 10_000);
  const due = new LruCache<string, true>(maxBehind);
  const behind = new LruCache<string, bigint>({ maxEntries: maxBehind, onEvict: (balanceId) => due.delete(balanceId) });
  const writeBehind = !snapshotEveryWrite && stateStore !== undefined;
  const empty: FoldedBalance = { state: { status: 'unopened' }, revision: NO_STREAM };
  /** Aborted by close(): every shared load stops at its next page. */
  const closing = new AbortController();
  /** The shared loads in flight, by balance (see `current`). */
  const flights = new Map<string, { readonly loaded: Promise<FoldedBalance>; readonly progress: { read: number }; waiting: number }>();

  function stopping(balanceId: string, read: number): BalanceLoadingError {
    return new BalanceLoadingError(`the process is stopping: the fold of balance ${balanceId} was abandoned after ${read} events; retry the request`);
  }

  /**
   * Folds the stream's events after `from`, a page at a time, up to `through` (inclusive) when given.
   * `progress` (a shared load's) counts the events read so far, keeps a snapshot every
   * `snapshotAfterEvents` of them, and stops the fold between pages at shutdown.
   */
  async function foldTail(
    balanceId: string,
    from: FoldedBalance,
    through?: bigint,
    reader: Pick<EventStore, 'readStream'> = eventStore,
    progress?: { read: number; kept: number; readonly stop: AbortSignal },
  ): Promise<{ loaded: FoldedBalance; read: number }> {
    const streamId = balanceStreamId(balanceId);
    let loaded = from;
    let read = 0;
    for (;;) {
      const remaining = through === undefined ? pageEvents : Math.min(pageEvents, Number(through - loaded.revision));
      if (remaining <= 0) return { loaded, read };
      if (progress?.stop.aborted) throw stopping(balanceId, read);
      const page = await reader.readStream(streamId, { fromRevision: loaded.revision + 1n, maxCount: remaining });
      loaded = foldRecorded(page, loaded);
      read += page.length;
      if (progress !== undefined) progress.read = read;
      if (page.length < remaining) return { loaded, read };
      // A long fold keeps its progress as it goes (a fold up to its revision, like any snapshot):
      // one abandoned at shutdown, or outrun by a stream that grows faster than it is read, is
      // resumed from here by the next process instead of from the start.
      if (progress !== undefined && read - progress.kept >= snapshotAfterEvents) {
        progress.kept = read;
        await keep([{ balanceId, loaded }], true);
      }
    }
  }

  /**
   * The one load of a balance from the cache or its snapshot plus the stream's tail, shared by
   * every caller that asks while it runs. It runs to its end whether or not anyone still waits
   * (a waiter whose budget ran out has been answered 503 and will retry): its result is cached,
   * and kept as a snapshot when it folded many events, so the retry and every later process start
   * there. A caller that joins while it runs may get a state a page or so older than the stream's
   * end: like any stale state, that costs a conflict on append, after which the tail is read.
   */
  function sharedLoad(balanceId: string): { readonly loaded: Promise<FoldedBalance>; readonly progress: { read: number }; waiting: number } {
    const inFlight = flights.get(balanceId);
    if (inFlight !== undefined) return inFlight;
    const progress = { read: 0, kept: 0, stop: closing.signal };
    const loaded = (async () => {
      const start = cache.get(balanceId) ?? (await stateStore?.load(balanceId)) ?? empty;
      const { loaded: folded, read } = await foldTail(balanceId, start, undefined, eventStore, progress);
      // Never replaces a newer state this process wrote meanwhile (a stale one only costs a conflict, but needlessly).
      if (folded.state.status === 'open' && (cache.get(balanceId)?.revision ?? -2n) < folded.revision) cache.set(balanceId, folded);
      if (read >= keepAfterLoadEvents && read > progress.kept) await keep([{ balanceId, loaded: folded }], true);
      return folded;
    })().finally(() => flights.delete(balanceId));
    const flight = { loaded, progress, waiting: 0 };
    // Nobody may be waiting by the time it fails (every waiter's budget ran out): its failure is
    // logged here, never an unhandled rejection. A waiter still there gets the error itself.
    loaded.catch((error: unknown) => {
      if (flight.waiting > 0) return;
      if (closing.signal.aborted) logger.debug({ balanceId, read: progress.read }, 'balance load abandoned at shutdown');
      else logger.warn({ err: error, balanceId, read: progress.read }, 'background balance load failed; the next request loads it again');
    });
    flights.set(balanceId, flight);
    return flight;
  }

  /**
   * Keeps these states; `replaceable` for those kept only to shorten the next load (see
   * BalanceStateStore.save). Resolves whether it succeeded: a snapshot is only a shortcut, so
   * failing to keep one costs a longer read later, never a write.
   */
  async function keep(balances: readonly { balanceId: string; loaded: FoldedBalance }[], replaceable = false): Promise<boolean> {
    if (stateStore === undefined || balances.length === 0) return true;
    try {
      await stateStore.save(balances, replaceable ? { replaceable } : undefined);
      return true;
    } catch (error) {
      logger.warn({ err: error, balances: balances.length }, 'could not keep balance snapshots');
      return false;
    }
  }

  /**
   * Marks a balance as written since its last stored state (write-behind), from `since` (the
   * revision of its first write since) unless already marked, and as due once `revision` is
   * keepAfterLoadEvents past that; within the bound.
   */
  function markBehind(balanceId: string, since: bigint, revision: bigint): void {
    let from = behind.peek(balanceId);
    if (from === undefined) {
      from = since;
      behind.set(balanceId, from);
    }
    if (revision - from >= keepAfterEvents && due.peek(balanceId) === undefined) due.set(balanceId, true);
  }

  function unmark(balanceId: string): void {
    behind.delete(balanceId);
    due.delete(balanceId);
  }

  return {
    async current(balanceId, known, reader, wait) {
      if (known === undefined && reader === undefined) {
        // A closed process starts no load and the caller hears "stopping", whatever is left of
        // its budget: spent before this call (on the write's earlier reads), the budget would
        // otherwise answer "still being folded" for a load that can never finish.
        if (closing.signal.aborted) throw stopping(balanceId, 0);
        const flight = sharedLoad(balanceId);
        flight.waiting += 1;
        try {
          return await abandonable(flight.loaded, wait?.signal);
        } catch (error) {
          if (wait?.signal?.aborted !== true || error !== wait.signal.reason) throw error;
          // Nothing is decided or appended on this path: the write can be sent again as it is.
          throw new BalanceLoadingError(
            `the history of balance ${balanceId} is still being folded (${flight.progress.read} events read so far); nothing was changed: retry the request shortly`,
          );
        } finally {
          flight.waiting -= 1;
        }
      }
      const start = known ?? cache.get(balanceId) ?? (reader === undefined ? await stateStore?.load(balanceId) : undefined) ?? empty;
      const { loaded, read } = await foldTail(balanceId, start, undefined, reader);
      if (loaded.state.status === 'open') cache.set(balanceId, loaded);
      if (reader === undefined && read >= keepAfterLoadEvents) await keep([{ balanceId, loaded }], true);
      return loaded;
    },

    async at(balanceId, revision) {
      const cached = cache.get(balanceId);
      if (cached?.revision === revision) return cached;
      const stored = (await stateStore?.load(balanceId, revision)) ?? empty;
      // Whichever of the two is nearer below the revision: fewer events to fold.
      const start = cached !== undefined && cached.revision < revision && cached.revision > stored.revision ? cached : stored;
      const { loaded, read } = await foldTail(balanceId, start, revision);
      if (read >= snapshotAfterEvents) await keep([{ balanceId, loaded }]);
      return loaded;
    },

    async loadMany(balanceIds) {
      const states = new Map<string, FoldedBalance>();
      const missing: string[] = [];
      for (const balanceId of new Set(balanceIds)) {
        const cached = cache.get(balanceId);
        if (cached !== undefined) states.set(balanceId, cached);
        else missing.push(balanceId);
      }
      if (missing.length === 0) return states;
      const stored = (await stateStore?.loadLatest(missing)) ?? new Map<string, FoldedBalance>();
      const loaded: { balanceId: string; loaded: FoldedBalance; read: number }[] = [];
      // One paged read for them all: the streams without a stored state from their start (short,
      // or new: a long one has one, see snapshotAfterEvents and the write-behind), the others from
      // after their stored state (a stream with nothing after it reads no events at all).
      // In pages of pageEvents, as every other load here: the store's default page (10,000
      // events, some 12 MiB decoded) would be held by every partition's chunk at once.
      const whole = await loadBalances(eventStore, missing, { from: stored, maxPageEvents: pageEvents });
      for (const [balanceId, balance] of whole) loaded.push({ balanceId, loaded: balance, read: Number(balance.revision - (stored.get(balanceId)?.revision ?? NO_STREAM)) });
      for (const { balanceId, loaded: balance } of loaded) {
        states.set(balanceId, balance);
        if (balance.state.status === 'open') cache.set(balanceId, balance);
      }
      await keep(
        loaded.filter(({ read }) => read >= keepAfterLoadEvents),
        true,
      );
      return states;
    },

    async written(balances) {
      for (const { balanceId, loaded } of balances) cache.set(balanceId, loaded);
      const n = BigInt(snapshotAfterEvents);
      // Revisions count from 0: the stream holds revision + 1 events.
      const due = (b: { loaded: FoldedBalance; since?: bigint }) => b.since !== undefined && (b.since + 1n) / n < (b.loaded.revision + 1n) / n;
      if (snapshotEveryWrite) {
        await keep(balances);
        return;
      }
      const kept = balances.filter(due);
      // Every state handed here was appended and committed (the command path calls written()
      // after its transaction), so what the flush later keeps from the cache is a fold of
      // committed events; a state decided but not committed never reaches the cache this way.
      if (writeBehind) {
        for (const { balanceId, loaded, since } of balances) if (loaded.state.status === 'open') markBehind(balanceId, since ?? loaded.revision, loaded.revision);
      }
      if (kept.length > 0 && (await keep(kept))) for (const { balanceId } of kept) unmark(balanceId);
    },

    async flush(max, flushOptions) {
      const pending = flushOptions?.all === true ? behind : due;
      if (!writeBehind || pending.size === 0) return { kept: 0, behind: pending.size };
      const taken: { balanceId: string; since: bigint }[] = [];
      for (const balanceId of pending.keysOldestFirst()) {
        if (taken.length >= max) break;
        taken.push({ balanceId, since: behind.peek(balanceId)! });
      }
      for (const { balanceId } of taken) unmark(balanceId);
      // From the cache, which only ever holds folds of committed events (loads read committed
      // events; written() is called after the append commits): a stored state must never be a
      // state that was decided but not committed, or every later process would start from a
      // balance the stream does not hold. An id whose state the cache evicted or forgot (another
      // writer moved it) is skipped: nothing known to keep.
      const states: { balanceId: string; loaded: FoldedBalance; since: bigint }[] = [];
      for (const { balanceId, since } of taken) {
        const loaded = cache.peek(balanceId);
        if (loaded !== undefined && loaded.state.status === 'open') states.push({ balanceId, loaded, since });
      }
      if (!(await keep(states, true))) {
        // Kept for the next flush, unless written again meanwhile (then already marked).
        for (const { balanceId, loaded, since } of states) if (behind.peek(balanceId) === undefined) markBehind(balanceId, since, loaded.revision);
        return { kept: 0, behind: pending.size };
      }
      return { kept: states.length, behind: pending.size };
    },

    forget(balanceId) {
      cache.delete(balanceId);
    },

    async close() {
      closing.abort();
      // Each ends at its next page at the latest; their failures are logged by sharedLoad.
      await Promise.allSettled([...flights.values()].map((flight) => flight.loaded));
    },
  };
}
