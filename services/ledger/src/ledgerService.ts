import { randomUUID } from 'node:crypto';
import {
  BalanceAlreadyOpenError,
  BalanceCommand,
  type BalanceEvent,
  BalanceNotOpenError,
  formatCredits,
  HoldNotOpenError,
  balanceStreamId,
  decide,
  initialBalanceState,
  Micros,
  OpenBalance,
  PurchaseDetails,
  GrantDetails,
} from '@tally/domain';
import { ProductNotFoundError, type CatalogStore } from '@tally/catalog';
import { MarkerAlreadyRecordedError, StoredWithoutMarkerError, type EventStore, type RecordedEvent } from '@tally/event-store';
import type { Logger } from 'pino';
import { createBalanceCommandPath, type BalanceCommandRequest, type RequestHashOfEvents } from './balanceCommandPath';
import type { BalanceStateStore } from './balanceStateStore';
import { createBalanceStates } from './balanceStates';
import { commandIds, holdIdOf, ledgerEventId, MAX_EVENTS_PER_COMMAND, meteredUsageMarker, parseHoldId, purchaseKeyMarker } from './deterministicId';
import type { BalanceRegistry } from './balanceRegistry';
import {
  AlreadyRefundedError,
  BalanceNotFoundError,
  DuplicateBalanceError,
  EntryNotRefundableError,
  HoldNotFoundError,
  IdempotencyKeyReusedError,
  LedgerEntryNotFoundError,
  PurchaseKeyRefusedError,
} from './ledgerErrors';
import { fromRecordedEvent, RecordedBalanceEvent, BalanceContext, type LedgerActor } from './ledgerEvents';

export interface CommandResult {
  /** The balance after the command's events; on a replay, as the first run left it (what it answered then). */
  readonly balance: OpenBalance;
  /** The stream's revision `balance` is as of: its last event's, or for a command that changed nothing, the revision it was decided on. */
  readonly revision: bigint;
  /** The events the command caused (on a replayed idempotency key: the ones it caused the first time). */
  readonly events: readonly RecordedBalanceEvent[];
  /** True when an Idempotency-Key or deterministic id found the command already done. */
  readonly replayed: boolean;
}

export interface OpenBalanceRequest {
  readonly balanceId?: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name?: string;
  readonly startingBalance: Micros;
  /** Overrides the product's threshold for this balance only; undefined takes the product's. */
  readonly lowBalanceThreshold?: Micros | null;
  /** How far below zero holds may take `available`; default 0. */
  readonly overdraftLimit?: Micros;
  /** Who asked for it over the API: stored with its events. */
  readonly actor?: LedgerActor;
}

export interface PlaceHoldRequest {
  readonly credits: Micros;
  /** An ISO-8601 time, or seconds from now (this service's clock). */
  readonly expires: { readonly at: string } | { readonly inSeconds: number };
  readonly reference: string | null;
}

export interface HoldCommandResult extends CommandResult {
  readonly holdId: string;
}

export interface RequestOptions {
  /** The caller's Idempotency-Key: the same key with the same request returns the first result. */
  readonly idempotencyKey?: string;
  /** A digest of the request body, stored with the events, to tell a retry from a different request. */
  readonly requestHash?: string;
  /**
   * `performance.now()` when the request arrived: the load budget counts from it, so time queued
   * behind the balance's other writes counts too (see LedgerServiceOptions.loadBudgetMs).
   */
  readonly startedAt?: number;
  /** Who asked for it over the API: stored with the events it causes (their metadata's `actor`). */
  readonly actor?: LedgerActor;
}

/**
 * What a command carries besides itself to the command path; a digest may be made of its events
 * (RequestHashOfEvents). `markers` go only with the command's events (ExecuteOptions.markersOnlyWithEvents):
 * a command the balance refuses records none.
 */
type CommandExtras = Pick<RequestOptions, 'startedAt' | 'actor'> &
  Pick<BalanceCommandRequest, 'otherRequestError' | 'ifRevision'> & { readonly requestHash?: string | RequestHashOfEvents; readonly markers?: readonly string[] };

/**
 * The digest of a request whose amount may be left to its default (all of a charge, all of a
 * hold): made from the amount it comes to, so naming the whole amount and naming none are one
 * request (requestHash.ts hashes with defaults filled). A string: already complete.
 */
export type AmountRequestHash = string | ((credits: Micros) => string);

/** A command's extras with its digest made from the amount the command comes to. */
function withAmountHash<T extends { readonly requestHash?: AmountRequestHash }>(options: T | undefined, credits: Micros): Omit<T, 'requestHash'> & { requestHash?: string } {
  const { requestHash, ...extras } = options ?? ({} as T);
  const hash = typeof requestHash === 'function' ? requestHash(credits) : requestHash;
  return { ...extras, ...(hash !== undefined ? { requestHash: hash } : {}) };
}

export interface LedgerPage {
  readonly items: readonly RecordedBalanceEvent[];
  /**
   * The revision to pass for the next page, or null on the last page: as `before` for the next
   * (older) page newest first, as `after` for the next (newer) page oldest first.
   */
  readonly next: bigint | null;
  /** The refund of each charge on the page that has one: the charge's entry id → the refund's. */
  readonly refunds: ReadonlyMap<string, string>;
}

/** A page of a balance's ledger: newest first from `before` (the default), or oldest first from `after`. */
export type LedgerPageRequest = (
  | { readonly limit: number; readonly order?: 'newest'; readonly before?: bigint }
  | { readonly limit: number; readonly order: 'oldest'; readonly after?: bigint }
) & {
  /** false spares the read of the page's refunds (an empty map), for a reader that shows none. */
  readonly refunds?: boolean;
};

/** What one usage event did: whether it was metered, and the entries it wrote on each balance it charged. */
export interface UsageEntries {
  readonly usageEventId: string;
  /** Metered: its charges (if any) are all written. Not metered: not yet (in flight) or never (dead-lettered). */
  readonly metered: boolean;
  /** Only the balances it wrote on, in the order asked for, each with its entries in revision order and their refunds (charge id → refund id). */
  readonly balances: ReadonlyArray<{ readonly balanceId: string; readonly items: readonly RecordedBalanceEvent[]; readonly refunds: ReadonlyMap<string, string> }>;
}

/** The reason an auto-recharge's purchase is recorded with: what a reader of the ledger sees. */
export const AUTO_RECHARGE_REASON = 'auto-recharge: below the warning limit';

export interface LedgerService {
  openBalance(request: OpenBalanceRequest): Promise<CommandResult>;
  topUp(balanceId: string, input: { credits: Micros; reason: string | null }, options?: RequestOptions): Promise<CommandResult>;
  deduct(balanceId: string, input: { credits: Micros; reason: string | null }, options?: RequestOptions): Promise<CommandResult>;
  /**
   * A keyed purchase appends its key's fence (purchaseKeyMarker) with its event. Found recorded:
   * a purchase of the key is answered as the replay it is (its digest checked), or, none stored,
   * this request was refused before (refusePurchase) and PurchaseKeyRefusedError, nothing bought.
   */
  purchase(balanceId: string, purchase: PurchaseDetails & { credits: Micros }, options?: RequestOptions): Promise<CommandResult>;
  /**
   * The purchase the balance's auto-recharge makes for the low-balance warning `warningEventId`:
   * once per warning (its command id derives from the warning's), however often it is asked.
   */
  autoRecharge(balanceId: string, warningEventId: string, purchase: PurchaseDetails & { credits: Micros }): Promise<CommandResult>;
  /**
   * The terms a purchase of this Idempotency-Key (or the auto-recharge of this low-balance warning)
   * was stored with, read by the id its first event has (the command path's ids); undefined when
   * none is stored. A retry passes them back to `purchase` (`autoRecharge`), which replays it
   * whatever the catalog sells now, and still refuses another request with the key.
   */
  storedPurchase(balanceId: string, command: { readonly idempotencyKey: string } | { readonly warningEventId: string }): Promise<(PurchaseDetails & { credits: Micros }) | undefined>;
  /**
   * Settles a keyed purchase request refused for its bundle or terms against its twins in flight
   * on any process (priced before the catalog changed, not yet written): records the key's fence
   * alone, so that none of them can land after it, and answers undefined (the refusal stands:
   * nothing was bought, nor will be). When a purchase of the key recorded the fence first, its
   * terms, to answer as the replay (as storedPurchase).
   */
  refusePurchase(balanceId: string, request: { readonly idempotencyKey: string; readonly requestHash?: string }): Promise<(PurchaseDetails & { credits: Micros }) | undefined>;
  /**
   * Gives back the credits a charge took (`credits` of them, by default all): once per charge,
   * so a retry of the same request answers the first refund (replayed) and a different one
   * is AlreadyRefundedError. LedgerEntryNotFoundError for an id that is not this balance's
   * entry; EntryNotRefundableError for an entry that is not a CreditConsumed.
   */
  refund(
    balanceId: string,
    input: { entryId: string; credits?: Micros; reason: string | null },
    options?: Pick<RequestOptions, 'startedAt' | 'actor'> & { readonly requestHash?: AmountRequestHash },
  ): Promise<CommandResult>;
  /** A subscription's grant for one period; idempotent by subscription, product and period. */
  grant(balanceId: string, grant: GrantDetails & { credits: Micros; productId: string }): Promise<CommandResult>;
  /** Whether that grant is stored on the balance: one read by its id (commandIds.grant), no fold. */
  isGranted(balanceId: string, grant: { readonly subscriptionId: string; readonly productId: string; readonly period: number }): Promise<boolean>;
  /**
   * `changeId` names a change a caller may ask for again (a subscription's limit, applied by
   * whichever scheduler gets there): the same id is made once, and asked again answers the first
   * (replayed) whatever the settings are by then. Without one, each call is a change of its own.
   * `ifRevision` (an If-Match): made only on the balance at that revision, else BalanceChangedError
   * and nothing appended, checked atomically with the append (the command path's expected revision).
   */
  changeSettings(
    balanceId: string,
    input: { name?: string; lowBalanceThreshold?: Micros | null; overdraftLimit?: Micros },
    options?: Pick<RequestOptions, 'actor'> & { readonly changeId?: string; readonly ifRevision?: bigint },
  ): Promise<CommandResult>;
  /**
   * Sets credits aside. The key is required: it makes the hold id (holdIdOf), so a retried
   * placement answers the hold it made instead of placing a second one. InsufficientCreditsError
   * when it does not fit.
   */
  placeHold(balanceId: string, request: PlaceHoldRequest, options: RequestOptions & { idempotencyKey: string }): Promise<HoldCommandResult>;
  /** Charges the hold (all of it, or `credits` of it) and frees the rest; once per hold, so a retry answers the first capture. */
  captureHold(holdId: string, input: { credits?: Micros; reason: string | null }, options?: Pick<RequestOptions, 'actor'> & { readonly requestHash?: AmountRequestHash }): Promise<HoldCommandResult>;
  releaseHold(holdId: string, input: { reason: string | null }, options?: Pick<RequestOptions, 'requestHash' | 'actor'>): Promise<HoldCommandResult>;
  /** For the expiry worker: frees a hold past its expiresAt (HoldNotExpiredError before, HoldNotOpenError once freed). */
  expireHold(holdId: string): Promise<HoldCommandResult>;
  /**
   * The balance at its stream's end, loaded as writes load it (one load shared by every caller).
   * `signal` ends this caller's wait (a request's deadline, its client gone): BalanceLoadingError
   * (transient), while the shared load goes on and keeps its result for the retry. `from`, an
   * earlier answer of this one: only the stream's tail after it is read, by this call alone, so
   * it sees every event stored before it (a shared load it would join may have read the tail
   * before some of them) and has no load to wait for (`signal` is not used).
   */
  getBalance(
    balanceId: string,
    options?: { readonly signal?: AbortSignal; readonly from?: { readonly balance: OpenBalance; readonly revision: bigint } },
  ): Promise<{ balance: OpenBalance; revision: bigint }>;
  readLedger(balanceId: string, page: LedgerPageRequest): Promise<LedgerPage>;
  /**
   * What each of the customer's usage events `usageEventIds` did to `balanceIds` (the customer's
   * balances), in the order asked: read by the markers and the event ids their metering writes
   * (meteredUsageMarker, commandIds.usage) and the ids their charges' refunds would have, in one
   * read of the store (for PostgreSQL one round trip, and one more for the headers of streams this
   * process has not read before), with no index of its own.
   */
  readUsageEntries(customerId: string, usageEventIds: readonly string[], balanceIds: readonly string[]): Promise<UsageEntries[]>;
  /** Abandons the balance loads still folding in the background (at shutdown, before the event store closes). */
  close(): Promise<void>;
}

/** A write's default time budget for loading its balance's state; the API's request timeout is 30 s. */
const DEFAULT_LOAD_BUDGET_MS = 10_000;

export interface LedgerServiceOptions {
  readonly eventStore: EventStore;
  /** Products: an opened balance takes its product's name and threshold unless given. */
  readonly catalog: Pick<CatalogStore, 'getProduct'>;
  readonly balanceRegistry: BalanceRegistry;
  readonly logger: Logger;
  /** Stored states of balances (createPostgresBalanceStateStore); without, only this process's cache shortens reads. */
  readonly stateStore?: BalanceStateStore;
  /** Time comes in from outside, so tests control it. */
  readonly clock?: () => Date;
  readonly maxAttempts?: number;
  /** Balances whose state this process keeps in memory; default 10,000. */
  readonly balanceCacheSize?: number;
  /**
   * How long a write may wait for its balance's state to load before it fails with
   * BalanceLoadingError (503, retriable; the load goes on in the background), in ms. Default
   * DEFAULT_LOAD_BUDGET_MS (TALLY_BALANCE_LOAD_BUDGET_MS); 0 waits as long as the load takes.
   */
  readonly loadBudgetMs?: number;
}

/**
 * Every writer but the metering consumer's batches (the API, purchases, the grant scheduler)
 * goes through the one command path (createBalanceCommandPath): state from the cache or a
 * snapshot plus the stream's tail, decide, append with the expected revision, and on a
 * conflict read only the tail and decide again. So 100 concurrent top-ups on one balance all
 * land, exactly, and a write on a million-event stream reads what it has not seen yet.
 */
export function createLedgerService(options: LedgerServiceOptions): LedgerService {
  const { eventStore, catalog, balanceRegistry } = options;
  const clock = options.clock ?? (() => new Date());
  const states = createBalanceStates({
    eventStore,
    ...(options.stateStore !== undefined ? { stateStore: options.stateStore } : {}),
    logger: options.logger,
    ...(options.balanceCacheSize !== undefined ? { cacheSize: options.balanceCacheSize } : {}),
  });
  const commands = createBalanceCommandPath({
    eventStore,
    states,
    logger: options.logger,
    retry: { ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}) },
    // Every write here may have a client waiting (the API, a purchase, a scheduler tick that retries):
    // each gets the budget, so it is answered before the request timeout cuts it off.
    loadBudgetMs: options.loadBudgetMs ?? DEFAULT_LOAD_BUDGET_MS,
  });

  async function contextOf(balanceId: string): Promise<BalanceContext> {
    const ref = await balanceRegistry.getBalance(balanceId);
    if (ref === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
    return { balanceId: ref.id, customerId: ref.customerId, productId: ref.productId };
  }

  async function execute(context: BalanceContext, commandId: string, command: BalanceCommand, extras: CommandExtras = {}): Promise<CommandResult> {
    const { requestHash, startedAt, actor, markers, otherRequestError, ifRevision } = extras;
    const [outcome] = await commands.execute(
      [
        {
          context,
          commandId,
          command,
          ...(requestHash !== undefined ? { requestHash } : {}),
          ...(actor !== undefined ? { actor } : {}),
          ...(otherRequestError !== undefined ? { otherRequestError } : {}),
          ...(ifRevision !== undefined ? { ifRevision } : {}),
        },
      ],
      { ...(startedAt !== undefined ? { startedAt } : {}), ...(markers !== undefined ? { markers, markersOnlyWithEvents: true } : {}) },
    );
    if (!outcome!.ok) throw outcome!.error;
    const { state, revision, events, replayed } = outcome!;
    if (state.status !== 'open') throw new BalanceNotOpenError('the credit balance does not exist');
    return { balance: state, revision, events, replayed };
  }

  /** The balance a hold id leads to; HoldNotFoundError for an id Tally never made or a balance that does not exist. */
  async function holdContext(holdId: string): Promise<{ context: BalanceContext; idempotencyKey: string }> {
    const parsed = parseHoldId(holdId);
    const ref = parsed === undefined ? undefined : await balanceRegistry.getBalance(parsed.balanceId);
    if (parsed === undefined || ref === undefined) throw new HoldNotFoundError(`no hold with id "${holdId}"`);
    return { context: { balanceId: ref.id, customerId: ref.customerId, productId: ref.productId }, idempotencyKey: parsed.idempotencyKey };
  }

  /**
   * A command on an existing hold. The decider only knows open holds; when it refuses one as not
   * open, the hold's placement event (its id is deterministic) tells "never placed" (404) from
   * "captured, released or expired" (409).
   */
  async function onHold(holdId: string, commandId: (holdId: string) => string, command: BalanceCommand, extras: CommandExtras = {}): Promise<HoldCommandResult> {
    const { context, idempotencyKey } = await holdContext(holdId);
    try {
      return { ...(await execute(context, commandId(holdId), command, { ...extras, otherRequestError: (stored) => holdFreedBy(holdId, stored) })), holdId };
    } catch (error) {
      if (error instanceof HoldNotOpenError && (await placementOf(context.balanceId, idempotencyKey)) === undefined) throw new HoldNotFoundError(`no hold with id "${holdId}"`);
      throw error;
    }
  }

  /**
   * A capture or release of a hold that one before it freed, asking for something else: the hold's
   * command id is its one capture (or release), so the stored run is what became of the hold.
   */
  function holdFreedBy(holdId: string, stored: readonly BalanceEvent[]): HoldNotOpenError {
    const freed = stored.find((event) => event.type === 'HoldCaptured' || event.type === 'HoldReleased' || event.type === 'HoldExpired');
    const what =
      freed?.type === 'HoldCaptured'
        ? `captured already (${formatCredits(freed.credits)} credits charged); a capture asking for another amount or reason is refused`
        : freed?.type === 'HoldReleased'
          ? 'released already; a release asking for another reason is refused'
          : 'freed already';
    return new HoldNotOpenError(`hold ${holdId} is not open: it was ${what}`);
  }

  /** A refund of a charge another request refunded: the charge's command id is its one refund, so the stored run is that refund. */
  function refundedBy(entryId: string, stored: readonly BalanceEvent[]): AlreadyRefundedError {
    const refund = stored.find((event) => event.type === 'CreditToppedUp');
    const given = refund?.type === 'CreditToppedUp' ? `: ${formatCredits(refund.credits)} credits were given back` : '';
    return new AlreadyRefundedError(`entry "${entryId}" was refunded already, by another request${given}`);
  }

  /** The event that placed the hold (its id is deterministic), whatever became of the hold since. */
  async function placementOf(balanceId: string, idempotencyKey: string): Promise<RecordedEvent | undefined> {
    const [placed] = await eventStore.readEventsById([ledgerEventId(commandIds.request(balanceId, 'hold', idempotencyKey), 0)]);
    return placed;
  }

  /**
   * What the hold held, from a capture's events: what a capture without an amount takes. Its
   * HoldCaptured says what it charged and what it freed, as decided now on the state the command
   * path loads (the fold keeps each open hold's amount) or as an earlier run stored it: no read of
   * the placement, and no registry lookup of its own.
   */
  function heldBy(holdId: string, events: readonly BalanceEvent[]): Micros {
    const captured = events.find((event) => event.type === 'HoldCaptured');
    if (captured?.type !== 'HoldCaptured') throw new Error(`the capture of hold ${holdId} recorded no HoldCaptured`);
    return captured.credits + captured.released;
  }

  /** The id a refund of this entry would have: one refund per charge (commandIds.refund). */
  const refundIdOf = (balanceId: string, entryId: string) => ledgerEventId(commandIds.refund(balanceId, entryId), 0);

  /**
   * The refunds of the charges among these entries (of one balance or several), found by the id
   * each would have (a refund's id derives from its charge's, commandIds.refund): one read by id,
   * no index of its own. Keyed by the charge's id, unique across balances.
   */
  async function refundsOf(pages: ReadonlyArray<{ readonly balanceId: string; readonly items: readonly RecordedBalanceEvent[] }>): Promise<ReadonlyMap<string, string>> {
    const refundIds = new Map<string, string>();
    for (const { balanceId, items } of pages) {
      for (const { event, eventId } of items) if (event.type === 'CreditConsumed') refundIds.set(refundIdOf(balanceId, eventId), eventId);
    }
    if (refundIds.size === 0) return new Map();
    // The store answers only ids asked for: each found refund has its charge in the map.
    const found = await eventStore.readEventsById([...refundIds.keys()]);
    return new Map(found.map((refund) => [refundIds.get(refund.id)!, refund.id]));
  }

  const storedPurchase: LedgerService['storedPurchase'] = async (balanceId, command) => {
    const commandId =
      'idempotencyKey' in command ? commandIds.request(balanceId, 'purchase', command.idempotencyKey) : commandIds.autoRecharge(balanceId, command.warningEventId);
    const [stored] = await eventStore.readEventsById([ledgerEventId(commandId, 0)]);
    // Another balance's event under the id is a collision, no purchase of this one: the command path refuses it.
    if (stored === undefined || stored.streamId !== balanceStreamId(balanceId)) return undefined;
    const { event } = fromRecordedEvent(stored);
    return event.type === 'CreditToppedUp' && event.purchase !== null ? { ...event.purchase, credits: event.credits } : undefined;
  };

  function requestCommandId(balanceId: string, operation: string, options: RequestOptions | undefined): string {
    // Without an Idempotency-Key every request is a new command: a random id.
    return options?.idempotencyKey === undefined
      ? commandIds.request(balanceId, operation, randomUUID())
      : commandIds.request(balanceId, operation, options.idempotencyKey);
  }

  return {
    async openBalance(request) {
      const product = await catalog.getProduct(request.productId);
      if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${request.productId}"`);
      let balanceId = request.balanceId ?? randomUUID();
      const at = clock().toISOString();
      const open = (id: string): BalanceCommand => ({
        type: 'OpenBalance',
        balanceId: id,
        customerId: request.customerId,
        productId: request.productId,
        name: request.name ?? product.name,
        lowBalanceThreshold: request.lowBalanceThreshold === undefined ? product.lowBalanceThreshold : request.lowBalanceThreshold,
        startingBalance: request.startingBalance,
        ...(request.overdraftLimit !== undefined ? { overdraftLimit: request.overdraftLimit } : {}),
        at,
      });
      // Whatever the decider refuses is refused before the balance is registered: a registered
      // balance whose opening never comes holds its customer's usage at the consumer until
      // balanceOpenWaitMs after the registration, then dead-letters it (balance_not_opened).
      decide(open(balanceId), initialBalanceState);
      try {
        await balanceRegistry.registerBalance({ id: balanceId, customerId: request.customerId, productId: request.productId });
      } catch (error) {
        if (!(error instanceof DuplicateBalanceError)) throw error;
        // The registry row is written before the stream: a crash in between leaves a row
        // without a stream, and the next request for the pair completes that opening.
        const [first] = await eventStore.readStream(balanceStreamId(error.existingBalanceId), { maxCount: 1 });
        if (first !== undefined) throw error;
        balanceId = error.existingBalanceId;
      }
      const context = { balanceId, customerId: request.customerId, productId: request.productId };
      // Two requests may both find the row without a stream and race to open it with the same
      // event ids (commandIds.open). Each call carries its own nonce in place of a request
      // digest, so the loser finds the winner's opening stored under another nonce and answers
      // 409, as a second open of the pair always does, instead of taking the winner's 201.
      const nonce = randomUUID();
      try {
        return await execute(context, commandIds.open(balanceId), open(balanceId), {
          requestHash: nonce,
          ...(request.actor !== undefined ? { actor: request.actor } : {}),
        });
      } catch (error) {
        if (error instanceof IdempotencyKeyReusedError || error instanceof BalanceAlreadyOpenError) {
          throw DuplicateBalanceError.of(request.customerId, request.productId, balanceId);
        }
        throw error;
      }
    },

    async topUp(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      return execute(
        context,
        requestCommandId(balanceId, 'top-up', requestOptions),
        { type: 'TopUp', credits: input.credits, source: 'manual', reason: input.reason, at },
        requestOptions,
      );
    },

    async deduct(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      return execute(
        context,
        requestCommandId(balanceId, 'deduction', requestOptions),
        { type: 'DeductManually', credits: input.credits, reason: input.reason, at },
        requestOptions,
      );
    },

    async purchase(balanceId, purchase, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      const { credits, ...details } = purchase;
      const commandId = requestCommandId(balanceId, 'purchase', requestOptions);
      const command: BalanceCommand = { type: 'TopUp', credits, source: 'purchase', reason: null, purchase: details, at };
      const key = requestOptions?.idempotencyKey;
      if (key === undefined) return execute(context, commandId, command, requestOptions);
      try {
        // The fence goes in the purchase's own append, stored together or not at all (see
        // refusePurchase), and only there: a refusal by the balance (not open yet) fences nothing.
        return await execute(context, commandId, command, { ...requestOptions, markers: [purchaseKeyMarker(balanceId, key, requestOptions?.requestHash)] });
      } catch (error) {
        if (!(error instanceof MarkerAlreadyRecordedError || error instanceof StoredWithoutMarkerError)) throw error;
        // Recorded by a twin's purchase (or stored by one from before fences): without the fence
        // the command path answers it as the replay it is, or refuses it (digest, collision).
        // None stored: a refusal of this very request recorded it, and its "nothing was bought" stands.
        const [first] = await eventStore.readEventsById([ledgerEventId(commandId, 0)]);
        if (first === undefined) {
          throw new PurchaseKeyRefusedError('a request with this Idempotency-Key and body was refused before, for its bundle or its terms: nothing was bought; send the purchase again with a new key');
        }
        return execute(context, commandId, command, requestOptions);
      }
    },

    async autoRecharge(balanceId, warningEventId, purchase) {
      const context = await contextOf(balanceId);
      const { credits, ...details } = purchase;
      return execute(context, commandIds.autoRecharge(balanceId, warningEventId), {
        type: 'TopUp',
        credits,
        source: 'purchase',
        reason: AUTO_RECHARGE_REASON,
        purchase: details,
        at: clock().toISOString(),
      });
    },

    storedPurchase,

    async refusePurchase(balanceId, { idempotencyKey, requestHash }) {
      // Where "nothing was bought" is made true: the store records a marker once, atomically with
      // the events of the append that carries it, on every process (AppendManyOptions.markers).
      // A purchase of this key and body carries the same marker in its own append, so exactly one
      // of the two records it: this refusal (the purchase's append then fails, writing nothing) or
      // the purchase (stored with it, and read here as the answer).
      try {
        await eventStore.appendMany([], { markers: [purchaseKeyMarker(balanceId, idempotencyKey, requestHash)] });
        return undefined;
      } catch (error) {
        if (!(error instanceof MarkerAlreadyRecordedError)) throw error;
        // An earlier refusal of the request recorded it when no purchase is stored: it stands as well.
        return storedPurchase(balanceId, { idempotencyKey });
      }
    },

    async refund(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const [stored] = await eventStore.readEventsById([input.entryId]);
      if (stored === undefined || stored.streamId !== balanceStreamId(balanceId)) {
        throw new LedgerEntryNotFoundError(`the ledger of credit balance "${balanceId}" has no entry with id "${input.entryId}"`);
      }
      const charge = fromRecordedEvent(stored).event;
      if (charge.type !== 'CreditConsumed') throw new EntryNotRefundableError(`entry "${input.entryId}" is a ${charge.type}: only a CreditConsumed can be refunded`);
      const at = clock().toISOString();
      const credits = input.credits ?? charge.credits;
      const command: BalanceCommand = { type: 'RefundConsumption', entryId: input.entryId, consumed: charge.credits, credits, reason: input.reason, at };
      // The command id derives from the charge's entry: the event store holds one refund per
      // charge, however many requests race, and a retry finds the first. Another request finds
      // what that first refund gave back.
      return execute(context, commandIds.refund(balanceId, input.entryId), command, {
        ...withAmountHash(requestOptions, credits),
        otherRequestError: (stored) => refundedBy(input.entryId, stored),
      });
    },

    async grant(balanceId, grant) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      const { credits, productId, ...details } = grant;
      return execute(context, commandIds.grant(details.subscriptionId, productId, details.period), {
        type: 'TopUp',
        credits,
        source: 'grant',
        reason: null,
        grant: details,
        at,
      });
    },

    async isGranted(balanceId, { subscriptionId, productId, period }) {
      const [stored] = await eventStore.readEventsById([ledgerEventId(commandIds.grant(subscriptionId, productId, period), 0)]);
      return stored !== undefined && stored.streamId === balanceStreamId(balanceId);
    },

    async changeSettings(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      const { changeId, ...extras } = requestOptions ?? {};
      // A given id is one part of the command id, escaped as any part is: it never meets a random one.
      return execute(context, commandIds.settings(balanceId, changeId ?? randomUUID()), { type: 'ChangeSettings', ...input, at }, extras);
    },

    async placeHold(balanceId, request, requestOptions) {
      const context = await contextOf(balanceId);
      const now = clock();
      const expiresAt = 'at' in request.expires ? request.expires.at : new Date(now.getTime() + request.expires.inSeconds * 1000).toISOString();
      const holdId = holdIdOf(balanceId, requestOptions.idempotencyKey);
      const result = await execute(
        context,
        commandIds.request(balanceId, 'hold', requestOptions.idempotencyKey),
        { type: 'PlaceHold', holdId, credits: request.credits, expiresAt, reference: request.reference, at: now.toISOString() },
        requestOptions,
      );
      return { ...result, holdId };
    },

    async captureHold(holdId, input, requestOptions) {
      const at = clock().toISOString();
      const command: BalanceCommand = { type: 'CaptureHold', holdId, ...(input.credits !== undefined ? { credits: input.credits } : {}), reason: input.reason, at };
      const hashOf = requestOptions?.requestHash;
      if (input.credits !== undefined || typeof hashOf !== 'function') return onHold(holdId, commandIds.holdCapture, command, withAmountHash(requestOptions, input.credits ?? 0n));
      // Without an amount it is all of the hold, which the command's events say (heldBy): hashed
      // as the request naming all of it, with no read of the hold's amount before the command.
      return onHold(holdId, commandIds.holdCapture, command, { ...requestOptions, requestHash: (events) => hashOf(heldBy(holdId, events)) });
    },

    async releaseHold(holdId, input, requestOptions) {
      const at = clock().toISOString();
      return onHold(holdId, commandIds.holdRelease, { type: 'ReleaseHold', holdId, reason: input.reason, at }, requestOptions);
    },

    async expireHold(holdId) {
      return onHold(holdId, commandIds.holdExpiry, { type: 'ExpireHold', holdId, at: clock().toISOString() });
    },

    async getBalance(balanceId, options) {
      const signal = options?.signal;
      const known = options?.from !== undefined ? { state: options.from.balance, revision: options.from.revision } : undefined;
      const { state, revision } = await states.current(balanceId, known, undefined, signal !== undefined ? { signal } : undefined);
      if (state.status !== 'open') throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return { balance: state, revision };
    },

    async readLedger(balanceId, page) {
      const streamId = balanceStreamId(balanceId);
      const cursor = page.order === 'oldest' ? page.after : page.before;
      if (page.order !== 'oldest' && cursor !== undefined && cursor <= 0n) return { items: [], next: null, refunds: new Map() };
      const recorded = await eventStore.readStream(
        streamId,
        page.order === 'oldest'
          ? { direction: 'forwards', fromRevision: cursor === undefined ? 0n : cursor + 1n, maxCount: page.limit + 1 }
          : { direction: 'backwards', ...(cursor !== undefined ? { fromRevision: cursor - 1n } : {}), maxCount: page.limit + 1 },
      );
      if (recorded.length === 0 && cursor === undefined) {
        throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      }
      const items = recorded.slice(0, page.limit).map(fromRecordedEvent);
      const last = items[items.length - 1];
      return {
        items,
        next: recorded.length > page.limit && last !== undefined ? last.revision : null,
        refunds: page.refunds === false ? new Map() : await refundsOf([{ balanceId, items }]),
      };
    },

    async readUsageEntries(customerId, usageEventIds, balanceIds) {
      // Every id each usage's command on each balance may have written: its charge, a freed hold,
      // a warning, a depletion. The event id says the usage and the balance: nothing else is looked up.
      const writer = new Map<string, { readonly usageEventId: string; readonly balanceId: string; readonly first: boolean }>();
      // And the id its charge's refund would have, read in the same read: a lookup of a charged
      // event is then one round trip, not one for its entries and another for their refunds. The
      // decider writes a usage's charge first (index 0); a charge stored anywhere else has its
      // refund read after, so the answer holds whatever order the entries were written in.
      const refundedEntry = new Map<string, string>();
      for (const usageEventId of usageEventIds) {
        for (const balanceId of balanceIds) {
          for (let index = 0; index < MAX_EVENTS_PER_COMMAND; index += 1) {
            const entryId = ledgerEventId(commandIds.usage(usageEventId, balanceId), index);
            writer.set(entryId, { usageEventId, balanceId, first: index === 0 });
            if (index === 0) refundedEntry.set(refundIdOf(balanceId, entryId), entryId);
          }
        }
      }
      const markers = usageEventIds.map((usageEventId) => meteredUsageMarker(customerId, usageEventId));
      const traces = await eventStore.readAppendTraces(markers, [...writer.keys(), ...refundedEntry.keys()]);
      const written = new Map<string, Map<string, RecordedBalanceEvent[]>>();
      const refundOf = new Map<string, string>();
      const charges = new Set<string>();
      const chargesElsewhere: Array<{ readonly balanceId: string; readonly items: RecordedBalanceEvent[] }> = [];
      for (const stored of traces.events) {
        const entryId = refundedEntry.get(stored.id);
        if (entryId !== undefined) {
          refundOf.set(entryId, stored.id);
          continue;
        }
        const { usageEventId, balanceId, first } = writer.get(stored.id)!;
        const entry = fromRecordedEvent(stored);
        if (entry.event.type === 'CreditConsumed') {
          charges.add(entry.eventId);
          if (!first) chargesElsewhere.push({ balanceId, items: [entry] });
        }
        const byBalance = written.get(usageEventId) ?? new Map<string, RecordedBalanceEvent[]>();
        byBalance.set(balanceId, [...(byBalance.get(balanceId) ?? []), entry]);
        written.set(usageEventId, byBalance);
      }
      const answers = usageEventIds.map((usageEventId, index) => {
        const byBalance = written.get(usageEventId);
        // In the order the balances were given; each one's entries in ledger order.
        const balances = balanceIds.flatMap((balanceId) => {
          const items = byBalance?.get(balanceId);
          if (items === undefined) return [];
          items.sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : 0));
          return [{ balanceId, items }];
        });
        // A charge without its marker is usage metered before markers were kept (migration 005
        // backfilled those it could derive): metered all the same.
        return { usageEventId, metered: traces.markers.has(markers[index]!) || byBalance !== undefined, balances };
      });
      // Only a charge is refunded, as refundsOf answers (a refund's id says its entry, not its type).
      const refunds = new Map([...refundOf].filter(([entryId]) => charges.has(entryId)));
      if (chargesElsewhere.length > 0) for (const [entryId, refundId] of await refundsOf(chargesElsewhere)) refunds.set(entryId, refundId);
      return answers.map(({ usageEventId, metered, balances }) => ({ usageEventId, metered, balances: balances.map((page) => ({ ...page, refunds })) }));
    },

    close: () => states.close(),
  };
}
