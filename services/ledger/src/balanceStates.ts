import { balanceStreamId, type FoldedBalance } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { Logger } from 'pino';
import { foldRecorded, loadBalances, NO_STREAM } from './balanceLoader';
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
   */
  current(balanceId: string, known?: FoldedBalance, reader?: Pick<EventStore, 'readStream'>): Promise<FoldedBalance>;
  /** The balance exactly at `revision` (an earlier command's last event): what that command answered. */
  at(balanceId: string, revision: bigint): Promise<FoldedBalance>;
  /**
   * Many balances at once, for a batch writer (the metering consumer): a cached state is handed
   * out as it is, without reading the tail (optimistic: a stale one costs a conflict on append,
   * after which current() reads the tail); the others load together, one query for their
   * snapshots and one paged read of the streams that have none (a stream with one reads its
   * tail). A missing stream loads as not opened and is not cached, so its opening is seen.
   */
  loadMany(balanceIds: readonly string[]): Promise<Map<string, FoldedBalance>>;
  /**
   * States this process just appended, each with the revision it was appended on (`since`):
   * cached, and kept as snapshots when due (every write, or see snapshotEveryWrite).
   */
  written(balances: readonly { readonly balanceId: string; readonly loaded: FoldedBalance; readonly since?: bigint }[]): Promise<void>;
  /** Drops the cached state (another writer's events make it stale: the next read starts from the snapshot). */
  forget(balanceId: string): void;
}

export interface BalanceStatesOptions {
  readonly eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged'>;
  /** Without one, states come from the cache or the stream's start. */
  readonly stateStore?: BalanceStateStore;
  readonly logger: Logger;
  /** Balances kept in memory (least recently used go first). Default 10,000. */
  readonly cacheSize?: number;
  /** Events read and folded at a time: memory per load is one page, however long the stream. Default 1,000. */
  readonly pageEvents?: number;
  /**
   * A load that had to fold at least this many events keeps its result as a snapshot, so the
   * next process (or this one after eviction) starts there. Default 10,000.
   */
  readonly snapshotAfterEvents?: number;
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
  const cache = createBalanceStateCache(options.cacheSize ?? 10_000);
  const pageEvents = options.pageEvents ?? 1000;
  const snapshotAfterEvents = options.snapshotAfterEvents ?? 10_000;
  const snapshotEveryWrite = options.snapshotEveryWrite ?? true;
  const empty: FoldedBalance = { state: { status: 'unopened' }, revision: NO_STREAM };

  /** Folds the stream's events after `from`, a page at a time, up to `through` (inclusive) when given. */
  async function foldTail(
    balanceId: string,
    from: FoldedBalance,
    through?: bigint,
    reader: Pick<EventStore, 'readStream'> = eventStore,
  ): Promise<{ loaded: FoldedBalance; read: number }> {
    const streamId = balanceStreamId(balanceId);
    let loaded = from;
    let read = 0;
    for (;;) {
      const remaining = through === undefined ? pageEvents : Math.min(pageEvents, Number(through - loaded.revision));
      if (remaining <= 0) return { loaded, read };
      const page = await reader.readStream(streamId, { fromRevision: loaded.revision + 1n, maxCount: remaining });
      loaded = foldRecorded(page, loaded);
      read += page.length;
      if (page.length < remaining) return { loaded, read };
    }
  }

  async function keep(balances: readonly { balanceId: string; loaded: FoldedBalance }[]): Promise<void> {
    if (stateStore === undefined || balances.length === 0) return;
    try {
      await stateStore.save(balances);
    } catch (error) {
      // A snapshot is only a shortcut: failing to keep one costs a longer read later, never a write.
      logger.warn({ err: error, balances: balances.length }, 'could not keep balance snapshots');
    }
  }

  return {
    async current(balanceId, known, reader) {
      const start = known ?? cache.get(balanceId) ?? (reader === undefined ? await stateStore?.load(balanceId) : undefined) ?? empty;
      const { loaded, read } = await foldTail(balanceId, start, undefined, reader);
      if (loaded.state.status === 'open') cache.set(balanceId, loaded);
      if (reader === undefined && read >= snapshotAfterEvents) await keep([{ balanceId, loaded }]);
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
      const [whole] = await Promise.all([
        // Streams without a snapshot are short (a long one has one: see snapshotAfterEvents), or new.
        loadBalances(eventStore, missing.filter((balanceId) => !stored.has(balanceId))),
        Promise.all([...stored].map(async ([balanceId, start]) => loaded.push({ balanceId, ...(await foldTail(balanceId, start)) }))),
      ]);
      for (const [balanceId, balance] of whole) loaded.push({ balanceId, loaded: balance, read: Number(balance.revision - NO_STREAM) });
      for (const { balanceId, loaded: balance } of loaded) {
        states.set(balanceId, balance);
        if (balance.state.status === 'open') cache.set(balanceId, balance);
      }
      await keep(loaded.filter(({ read }) => read >= snapshotAfterEvents));
      return states;
    },

    async written(balances) {
      for (const { balanceId, loaded } of balances) cache.set(balanceId, loaded);
      const n = BigInt(snapshotAfterEvents);
      // Revisions count from 0: the stream holds revision + 1 events.
      const due = (b: { loaded: FoldedBalance; since?: bigint }) => b.since !== undefined && (b.since + 1n) / n < (b.loaded.revision + 1n) / n;
      await keep(snapshotEveryWrite ? balances : balances.filter(due));
    },

    forget(balanceId) {
      cache.delete(balanceId);
    },
  };
}
