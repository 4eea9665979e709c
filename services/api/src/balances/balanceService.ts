import { performance } from 'node:perf_hooks';
import { balanceStreamId } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { BalanceNotFoundError, type BalanceRef, type BalanceRegistry, type CommandResult, type LedgerService, type OpenBalanceRequest } from '@tally/ledger';
import { foldBalanceStreams, snapshotOf, type BalanceReadModel, type PositionedBalance } from '@tally/projections';
import type { Logger } from 'pino';
import type { KeyedSerializer } from './keyedSerializer';
import { ledgerEntryView, type LedgerAudience, type LedgerEntryView } from '../ledger/ledgerEntryView';
import { waitForConsistency } from './waitForConsistency';
import { balanceViewOfSnapshot, type BalanceView } from './balanceView';

/** A folded balance as the API shows it: through the read model's snapshot, so both are written alike. */
const viewOf = (balance: PositionedBalance): BalanceView => balanceViewOfSnapshot(snapshotOf(balance));

export interface BalanceServiceDeps {
  readonly ledger: LedgerService;
  /** Guarded (guardBalanceReader): a failed read is an unavailable dependency. */
  readonly readModel: BalanceReadModel;
  readonly eventStore: Pick<EventStore, 'headPosition' | 'readStream' | 'readStreamsPaged'>;
  /** Every balance opened, whether projected yet or not. */
  /**
   * Read for every list, never from a cache (the main job passes its registry cache, whose
   * listCustomerBalances goes to the store): a balance its client opened a moment ago is listed
   * even before the registration's NOTIFY reaches this process.
   */
  readonly balanceRegistry: Pick<BalanceRegistry, 'listCustomerBalances'>;
  /** Every write to an existing balance runs through it, keyed by the balance id. */
  readonly balanceWrites: KeyedSerializer;
  /** How long `consistent` reads wait for the read model, and how often they look. */
  readonly consistency: { readonly timeoutMs: number; readonly pollIntervalMs: number };
  readonly logger: Logger;
}

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
}

export function createBalanceService(deps: BalanceServiceDeps): BalanceService {
  const { ledger, readModel, eventStore, balanceWrites } = deps;
  const logger = deps.logger.child({ module: 'balance-service' });

  async function caughtUp(consistent: boolean): Promise<void> {
    if (consistent) await waitForConsistency({ balances: readModel, eventStore, ...deps.consistency });
  }

  /**
   * The balances among `balanceIds` folded from their streams by the projection's own fold (so
   * the answer is what the read model will hold), up to the store's head as the read began. The
   * streams are read together in pages: one round of queries however many balances the read
   * model lacks (a customer's, while it is rebuilt).
   */
  async function foldedViews(balanceIds: readonly string[]): Promise<BalanceView[]> {
    if (balanceIds.length === 0) return [];
    const head = await eventStore.headPosition();
    const folded = await foldBalanceStreams(eventStore, new Map(balanceIds.map((balanceId) => [balanceId, head])));
    return [...folded.values()].flatMap((balance) => (balance === undefined ? [] : [viewOf(balance)]));
  }

  /**
   * The balance a write answers with: the ledger's result carries the state after the command's
   * events, and for a replayed Idempotency-Key the state the first request left (what it answered
   * then), so nothing here reads the stream. A command that changed nothing (a settings patch to
   * the same values) answers the state it was decided on, at the position of the event of that
   * revision: not the stream's last, which a writer elsewhere may have appended since, so that
   * the figures are always the fold of the stream up to the position they are given with.
   */
  async function viewAfter(balanceId: string, result: CommandResult): Promise<BalanceView> {
    const last = result.events.at(-1) ?? (await eventStore.readStream(balanceStreamId(balanceId), { fromRevision: result.revision, maxCount: 1 }))[0];
    // The command found the balance open, and streams only grow: a miss here is a broken store.
    if (last === undefined) throw new Error(`balance ${balanceId} vanished from the event store after a command on it`);
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
      await caughtUp(consistent);
      const snapshot = await readModel.getBalance(balanceId);
      if (snapshot !== undefined) return balanceViewOfSnapshot(snapshot);
      // Opened a moment ago, or the read model is being rebuilt: the event store has the truth.
      const [folded] = await foldedViews([balanceId]);
      if (folded === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return folded;
    },

    async listOfCustomer(customerId, { consistent }) {
      await caughtUp(consistent);
      const [snapshots, registered] = await Promise.all([
        readModel.getCustomerBalances(customerId),
        // Without PostgreSQL the list is still served, from the read model alone, as it was
        // before the fallback existed: a read should not fail for want of a completeness check.
        deps.balanceRegistry.listCustomerBalances(customerId).catch((error: unknown): readonly BalanceRef[] => {
          logger.warn({ err: error, customerId }, 'balance registry unreadable; listing the read model alone');
          return [];
        }),
      ]);
      const views = snapshots.map(balanceViewOfSnapshot);
      // The balance registry knows every balance opened; the event store has the truth of those
      // the read model has not projected yet, as the single-balance GET does.
      const projected = new Set(views.map((view) => view.id));
      const missing = registered.map(({ id }) => id).filter((id) => !projected.has(id));
      return [...views, ...(await foldedViews(missing))];
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
  };
}
