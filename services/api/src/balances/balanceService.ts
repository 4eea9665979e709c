import { performance } from 'node:perf_hooks';
import { balanceStreamId } from '@tally/domain';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import {
  BalanceNotFoundError,
  type BalanceRef,
  type BalanceRegistry,
  type CommandResult,
  loadBudgetSignal,
  type LedgerService,
  type OpenBalanceRequest,
} from '@tally/ledger';
import { snapshotOf, type BalanceReadModel, type PositionedBalance } from '@tally/projections';
import type { Logger } from 'pino';
import type { KeyedSerializer } from './keyedSerializer';
import { ledgerEntryView, type LedgerAudience, type LedgerEntryView } from '../ledger/ledgerEntryView';
import { waitForConsistency, type ConsistentSource } from './waitForConsistency';
import { balanceViewOfSnapshot, type BalanceView } from './balanceView';

/** A folded balance as the API shows it: through the read model's snapshot, so both are written alike. */
const viewOf = (balance: PositionedBalance): BalanceView => balanceViewOfSnapshot(snapshotOf(balance));

export interface BalanceServiceDeps {
  readonly ledger: LedgerService;
  /** Guarded (guardBalanceReader): a failed read is an unavailable dependency. */
  readonly readModel: BalanceReadModel;
  readonly eventStore: Pick<EventStore, 'headPosition' | 'readStream'>;
  /**
   * Every balance opened, whether projected yet or not. Read for every list, never from a cache
   * (the main job passes its registry cache, whose listCustomerBalances and findBalance go to the
   * store): a balance its client opened a moment ago is found even before the registration's
   * NOTIFY reaches this process.
   */
  readonly balanceRegistry: Pick<BalanceRegistry, 'listCustomerBalances' | 'findBalance'>;
  /** Every write to an existing balance runs through it, keyed by the balance id. */
  readonly balanceWrites: KeyedSerializer;
  /** How long `consistent` reads wait for the read model, and how often they look. */
  readonly consistency: { readonly timeoutMs: number; readonly pollIntervalMs: number };
  /**
   * How long a read may wait for the state of a balance the read model lacks to load (a long
   * history folded) before it answers BalanceLoadingError (503) while the load goes on; the
   * budget the ledger gives writes (TALLY_BALANCE_LOAD_BUDGET_MS). Default 10 s; 0 waits as long
   * as the load takes.
   */
  readonly loadBudgetMs?: number;
  readonly logger: Logger;
}

/** The ledger's default budget for writes, which reads share. */
const DEFAULT_LOAD_BUDGET_MS = 10_000;

/** A write's answer: the event it recorded first and the balance after it. */
export interface BalanceChange {
  readonly entry: LedgerEntryView;
  readonly balance: BalanceView;
  /** True when an Idempotency-Key found the change already made: this is what it answered then. */
  readonly replayed: boolean;
}

/**
 * Credit balances as the API shows them: reads from the read model, completed from the event
 * store for balances it does not hold yet; writes through the ledger, answered with the state
 * their events left (the read model may not have it yet).
 */
export interface BalanceService {
  /** Throws BalanceNotFoundError when no balance has the id. */
  get(balanceId: string, options: { readonly consistent: boolean }): Promise<BalanceView>;
  /** Every balance of the customer, in no particular order. */
  listOfCustomer(customerId: string, options: { readonly consistent: boolean }): Promise<BalanceView[]>;
  /**
   * The customer's balance of the product, folded from the event store: for a reader the read
   * model could not answer (an entitlement check). BalanceNotFoundError when the registry has
   * none; a registry that cannot be read fails the call, since "none" would be a guess.
   */
  foldedOfProduct(customerId: string, productId: string): Promise<BalanceView>;
  open(request: OpenBalanceRequest): Promise<BalanceView>;
  changeSettings(...request: Parameters<LedgerService['changeSettings']>): Promise<BalanceView>;
  topUp(...request: Parameters<LedgerService['topUp']>): Promise<BalanceChange>;
  deduct(...request: Parameters<LedgerService['deduct']>): Promise<BalanceChange>;
  refund(...request: Parameters<LedgerService['refund']>): Promise<BalanceChange>;
  /**
   * Runs another write on an existing balance (a purchase), queued behind the balance's other writes;
   * its entry as `audience` may see it (a replayed purchase may have been a key's).
   */
  change(balanceId: string, command: () => Promise<CommandResult>, audience?: LedgerAudience): Promise<BalanceChange>;
  /** As change, for a command whose answer is built from its events (holds): the ledger's result and the balance after it. */
  run<R extends CommandResult>(balanceId: string, command: () => Promise<R>): Promise<{ result: R; balance: BalanceView }>;
  /**
   * The signal for ledger.getBalance of a request that began at `startedAt` (performance.now()):
   * what is left of the load budget, at least a tenth of it; undefined without a budget. Reads of a
   * balance the read model lacks use it, and so must any other request that loads a balance's state.
   */
  loadSignal(startedAt: number): AbortSignal | undefined;
}

export function createBalanceService(deps: BalanceServiceDeps): BalanceService {
  const { ledger, readModel, eventStore, balanceWrites } = deps;
  const logger = deps.logger.child({ module: 'balance-service' });
  const loadBudgetMs = deps.loadBudgetMs ?? DEFAULT_LOAD_BUDGET_MS;

  /**
   * Where a read is answered from: the read model, caught up first when `consistent`; or, for a
   * consistent read while the read model serves nothing (being rebuilt), the event store alone:
   * asking the read model then answers nothing, and a rebuild that lands meanwhile may serve
   * figures from before writes the read must reflect (its target is the head when it began).
   */
  async function sourceOf(consistent: boolean): Promise<ConsistentSource> {
    return consistent ? waitForConsistency({ balances: readModel, eventStore, ...deps.consistency }) : 'readModel';
  }

  /**
   * The event at `revision` of a balance whose state was found there (streams only grow): the
   * position a view of that state is given at, so that its figures are always the fold of the
   * stream up to that position, whatever a writer elsewhere appended since.
   */
  async function eventAt(balanceId: string, revision: bigint): Promise<RecordedEvent> {
    const [event] = await eventStore.readStream(balanceStreamId(balanceId), { fromRevision: revision, maxCount: 1 });
    if (event === undefined) throw new Error(`balance ${balanceId} has no event at revision ${revision}, where its state was found: the event store is broken`);
    return event;
  }

  // As the command path bounds a write's wait.
  const loadSignal = (startedAt: number): AbortSignal | undefined => loadBudgetSignal(loadBudgetMs, startedAt);

  /**
   * A balance the read model lacks, through the ledger's state path: its cached or stored state
   * plus the stream's tail, in one load shared by every reader and writer of the balance in this
   * process, which keeps its result. Never the whole stream per request: that took 2 s a read at
   * 100,000 events, and concurrent reads each took as long again. Within the load budget counted
   * from `startedAt`, as writes: past it, 503 balance_loading, and the load goes on for the retry.
   * undefined when no balance has the id.
   */
  async function folded(balanceId: string, startedAt: number): Promise<BalanceView | undefined> {
    const signal = loadSignal(startedAt);
    let loaded: Awaited<ReturnType<LedgerService['getBalance']>>;
    try {
      // Down to the shared load's waiters: past the signal the ledger answers BalanceLoadingError
      // (with the events read so far) and counts this reader out, the load going on for the retry.
      loaded = await ledger.getBalance(balanceId, signal !== undefined ? { signal } : undefined);
    } catch (error) {
      if (error instanceof BalanceNotFoundError) return undefined;
      throw error;
    }
    const { position } = await eventAt(balanceId, loaded.revision);
    return viewOf({ state: loaded.balance, revision: loaded.revision, position });
  }

  /**
   * The balance a write answers with: the ledger's result carries the state after the command's
   * events, and for a replayed Idempotency-Key the state the first request left (what it answered
   * then), so nothing here reads the stream. A command that changed nothing (a settings patch to
   * the same values) answers the state it was decided on, at the position of the event of that
   * revision (eventAt).
   */
  async function viewAfter(balanceId: string, result: CommandResult): Promise<BalanceView> {
    const last = result.events.at(-1) ?? (await eventAt(balanceId, result.revision));
    return viewOf({ state: result.balance, revision: last.revision, position: last.position });
  }

  async function run<R extends CommandResult>(balanceId: string, command: () => Promise<R>): Promise<{ result: R; balance: BalanceView }> {
    const result = await balanceWrites.run(balanceId, command);
    return { result, balance: await viewAfter(balanceId, result) };
  }

  async function change(balanceId: string, command: () => Promise<CommandResult>, audience: LedgerAudience = 'keyHolder'): Promise<BalanceChange> {
    const { result, balance } = await run(balanceId, command);
    const entry = result.events[0];
    // A top-up, deduction or purchase of a positive amount always records one event first.
    if (entry === undefined) throw new Error(`a change on balance ${balanceId} recorded no event`);
    return { entry: ledgerEntryView(entry, audience), balance, replayed: result.replayed };
  }

  return {
    async get(balanceId, { consistent }) {
      const startedAt = performance.now();
      const source = await sourceOf(consistent);
      const snapshot = source === 'fold' ? undefined : await readModel.getBalance(balanceId);
      if (snapshot !== undefined) return balanceViewOfSnapshot(snapshot);
      // Opened a moment ago, or the read model is being rebuilt: the event store has the truth.
      const view = await folded(balanceId, startedAt);
      if (view === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return view;
    },

    async listOfCustomer(customerId, { consistent }) {
      const startedAt = performance.now();
      const source = await sourceOf(consistent);
      const [snapshots, registered] = await Promise.all([
        source === 'fold' ? [] : readModel.getCustomerBalances(customerId),
        // Without PostgreSQL the list is still served, from the read model alone, as it was
        // before the fallback existed: a read should not fail for want of a completeness check.
        // Not a consistent read folded while the read model is rebuilt: the registry is its only
        // list, and an empty one would not be consistent, so it fails (503) instead.
        source === 'fold'
          ? deps.balanceRegistry.listCustomerBalances(customerId)
          : deps.balanceRegistry.listCustomerBalances(customerId).catch((error: unknown): readonly BalanceRef[] => {
              logger.warn({ err: error, customerId }, 'balance registry unreadable; listing the read model alone');
              return [];
            }),
      ]);
      const views = snapshots.map(balanceViewOfSnapshot);
      // The balance registry knows every balance opened; the event store has the truth of those
      // the read model has not projected yet, as the single-balance GET does.
      const projected = new Set(views.map((view) => view.id));
      const missing = registered.map(({ id }) => id).filter((id) => !projected.has(id));
      const foldedViews = await Promise.all(missing.map((balanceId) => folded(balanceId, startedAt)));
      return [...views, ...foldedViews.filter((view): view is BalanceView => view !== undefined)];
    },

    async foldedOfProduct(customerId, productId) {
      const startedAt = performance.now();
      const ref = await deps.balanceRegistry.findBalance(customerId, productId);
      const view = ref === undefined ? undefined : await folded(ref.id, startedAt);
      if (view === undefined) throw new BalanceNotFoundError(`customer "${customerId}" has no balance of product "${productId}"`);
      return view;
    },

    async open(request) {
      const result = await ledger.openBalance(request);
      return viewAfter(result.balance.balanceId, result);
    },

    async changeSettings(balanceId, settings, options) {
      return viewAfter(balanceId, await balanceWrites.run(balanceId, () => ledger.changeSettings(balanceId, settings, options)));
    },

    // The ledger's load budget counts from here, before the queue: a write queued behind others
    // on a balance still loading is answered 503 within about the budget, not cut off by the request timeout.
    topUp: (balanceId, input, options) => {
      const startedAt = performance.now();
      return change(balanceId, () => ledger.topUp(balanceId, input, { ...options, startedAt }));
    },
    deduct: (balanceId, input, options) => {
      const startedAt = performance.now();
      return change(balanceId, () => ledger.deduct(balanceId, input, { ...options, startedAt }));
    },
    refund: (balanceId, input, options) => {
      const startedAt = performance.now();
      return change(balanceId, () => ledger.refund(balanceId, input, { ...options, startedAt }));
    },
    change,
    run,
    loadSignal,
  };
}
