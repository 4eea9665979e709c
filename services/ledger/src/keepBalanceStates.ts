import type { EventStore } from '@tally/event-store';
import type { Logger } from 'pino';
import type { BalanceStateStore } from './balanceStateStore';
import { createBalanceStates } from './balanceStates';

export interface KeepBalanceStatesOptions {
  readonly eventStore: Pick<EventStore, 'readStream' | 'readStreamsPaged'>;
  readonly stateStore: BalanceStateStore;
  /** Balance ids in a stable order, `limit` at a time after `after` (createPostgresBalancePages). */
  readonly pageBalanceIds: (after: string | undefined, limit: number) => Promise<readonly string[]>;
  readonly logger: Logger;
  /** Balances loaded and kept together. Default 1000. */
  readonly pageSize?: number;
  /** Resume after this balance id (the last one a previous run reported done). */
  readonly after?: string;
  /** After each page: balances checked so far, states kept so far, the page's last id. */
  readonly onPage?: (progress: { readonly balances: number; readonly kept: number; readonly last: string }) => void;
}

/**
 * Keeps a stored state for every balance that has none or whose stored state is behind its stream
 * (`tally keep-balance-states`, after a bulk import or a restore that wrote events without Tally's
 * writers and so without their stored states). Through the one load path: BalanceStates.loadMany
 * folds each page of balances from its latest stored state (or the start) and keeps, in one batched
 * write, every state that had to fold at least one event, as a replaceable row. Each state kept is
 * the fold of events read from the store, so committed. Idempotent: a balance already up to date
 * folds nothing and is not written; run twice, the second run writes nothing new. Resumable: pages
 * go in id order, each done before the next begins, and `after` starts past what was done; a
 * balance written by the running service meanwhile is only more up to date (or a little behind,
 * which its next load folds). A failed write fails the run (it is not silently skipped).
 */
export async function keepBalanceStates(options: KeepBalanceStatesOptions): Promise<{ balances: number; kept: number; last: string | undefined }> {
  const pageSize = options.pageSize ?? 1000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer; got ${pageSize}`);
  let kept = 0;
  let failure: { error: unknown } | undefined;
  // Counts what is kept and remembers a failed write, which BalanceStates only logs (for the
  // services a stored state is a shortcut; for this command it is the whole point).
  const stateStore: BalanceStateStore = {
    load: (balanceId, atOrBefore) => options.stateStore.load(balanceId, atOrBefore),
    loadLatest: (balanceIds) => options.stateStore.loadLatest(balanceIds),
    async save(states, saveOptions) {
      try {
        await options.stateStore.save(states, saveOptions);
        kept += states.filter(({ loaded }) => loaded.state.status === 'open').length;
      } catch (error) {
        failure ??= { error };
        throw error;
      }
    },
  };
  // Keeps whatever a load had to fold (keepAfterLoadEvents 1); its cache holds about one page.
  const states = createBalanceStates({
    eventStore: options.eventStore,
    stateStore,
    logger: options.logger,
    cacheSize: pageSize,
    snapshotEveryWrite: false,
    keepAfterLoadEvents: 1,
  });
  let balances = 0;
  let last = options.after;
  try {
    for (;;) {
      const page = await options.pageBalanceIds(last, pageSize);
      if (page.length === 0) break;
      await states.loadMany(page);
      if (failure !== undefined) throw failure.error;
      balances += page.length;
      last = page[page.length - 1]!;
      options.onPage?.({ balances, kept, last });
      for (const balanceId of page) states.forget(balanceId);
      if (page.length < pageSize) break;
    }
  } finally {
    await states.close();
  }
  return { balances, kept, last };
}
