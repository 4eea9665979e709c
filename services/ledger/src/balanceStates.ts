import { balanceStreamId, type FoldedBalance } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { Logger } from 'pino';
import { foldRecorded, NO_STREAM } from './balanceLoader';
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
  /** States this process just appended: cached, and kept as snapshots when due. */
  written(balances: readonly { readonly balanceId: string; readonly loaded: FoldedBalance }[]): Promise<void>;
  /** Drops the cached state (another writer's events make it stale: the next read starts from the snapshot). */
  forget(balanceId: string): void;
}

export interface BalanceStatesOptions {
  readonly eventStore: Pick<EventStore, 'readStream'>;
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
  /** Keep a snapshot of every state written (so a replayed command answers from it); default true. */
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

    async written(balances) {
      for (const { balanceId, loaded } of balances) cache.set(balanceId, loaded);
      if (snapshotEveryWrite) await keep(balances);
    },

    forget(balanceId) {
      cache.delete(balanceId);
    },
  };
}
