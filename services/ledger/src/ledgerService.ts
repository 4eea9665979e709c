import { randomInt, randomUUID } from 'node:crypto';
import {
  BalanceCommand,
  BalanceNotOpenError,
  balanceStreamId,
  decide,
  evolve,
  Micros,
  OpenBalance,
  PurchaseDetails,
  GrantDetails,
  ValidationError,
} from '@tally/domain';
import { BalanceNotFoundError, CatalogStore, DuplicateBalanceError, ProductNotFoundError } from '@tally/catalog';
import type { EventStore } from '@tally/event-store';
import type { Logger } from 'pino';
import { expectedRevisionOf, loadBalance, NO_STREAM } from './balanceLoader';
import { commandIds, ledgerEventId, MAX_EVENTS_PER_COMMAND } from './deterministicId';
import { ConcurrencyExhaustedError, IdempotencyKeyReusedError, isWrongExpectedRevision } from './ledgerErrors';
import { fromRecordedEvent, RecordedBalanceEvent, toEventsToAppend, BalanceContext } from './ledgerEvents';

const MAX_BACKOFF_MS = 250;

export interface CommandResult {
  readonly balance: OpenBalance;
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
}

export interface RequestOptions {
  /** The caller's Idempotency-Key: the same key with the same request returns the first result. */
  readonly idempotencyKey?: string;
  /** A digest of the request body, stored with the events, to tell a retry from a different request. */
  readonly requestHash?: string;
}

export interface LedgerPage {
  readonly items: readonly RecordedBalanceEvent[];
  /** The revision to pass as `before` for the next (older) page, or null on the last page. */
  readonly next: bigint | null;
}

export interface LedgerService {
  openBalance(request: OpenBalanceRequest): Promise<CommandResult>;
  topUp(balanceId: string, input: { credits: Micros; reason: string | null }, options?: RequestOptions): Promise<CommandResult>;
  deduct(balanceId: string, input: { credits: Micros; reason: string | null }, options?: RequestOptions): Promise<CommandResult>;
  purchase(balanceId: string, purchase: PurchaseDetails & { credits: Micros }, options?: RequestOptions): Promise<CommandResult>;
  /** A subscription's grant for one period; idempotent by subscription, product and period. */
  grant(balanceId: string, grant: GrantDetails & { credits: Micros; productId: string }): Promise<CommandResult>;
  changeSettings(
    balanceId: string,
    input: { name?: string; lowBalanceThreshold?: Micros | null },
  ): Promise<CommandResult>;
  getBalance(balanceId: string): Promise<{ balance: OpenBalance; revision: bigint }>;
  readLedger(balanceId: string, page: { limit: number; before?: bigint }): Promise<LedgerPage>;
}

export interface LedgerServiceOptions {
  readonly eventStore: EventStore;
  readonly catalog: CatalogStore;
  readonly logger: Logger;
  /** Time comes in from outside, so tests control it. */
  readonly clock?: () => Date;
  readonly maxAttempts?: number;
}

/**
 * The command path for every writer but the metering consumer's batches (the API, the grant
 * scheduler): load the stream, decide, append with the expected revision. A concurrent writer
 * makes the append fail instead of overwriting; the command is then re-decided on the fresh
 * state, so 100 concurrent top-ups and deductions on one balance all land, exactly.
 */
export function createLedgerService(options: LedgerServiceOptions): LedgerService {
  const { eventStore, catalog } = options;
  const clock = options.clock ?? (() => new Date());
  const maxAttempts = options.maxAttempts ?? 30;
  const logger = options.logger.child({ module: 'ledger-service' });

  async function contextOf(balanceId: string): Promise<BalanceContext> {
    const ref = await catalog.getBalance(balanceId);
    if (ref === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
    return { balanceId: ref.id, customerId: ref.customerId, productId: ref.productId };
  }

  /** The events a command id already caused, if it ran before; checked against the request digest. */
  async function previousRun(commandId: string, requestHash: string | undefined): Promise<RecordedBalanceEvent[] | undefined> {
    const ids = Array.from({ length: MAX_EVENTS_PER_COMMAND + 1 }, (_, index) => ledgerEventId(commandId, index));
    const stored = await eventStore.readEventsById(ids);
    if (stored.length === 0) return undefined;
    const events = stored.map(fromRecordedEvent).sort((a, b) => (a.revision < b.revision ? -1 : 1));
    if (requestHash !== undefined && events[0]?.metadata.requestHash !== requestHash) {
      throw new IdempotencyKeyReusedError('this Idempotency-Key was already used with a different request');
    }
    return events;
  }

  async function execute(
    context: BalanceContext,
    commandId: string,
    command: () => BalanceCommand,
    requestHash?: string,
  ): Promise<CommandResult> {
    const streamId = balanceStreamId(context.balanceId);
    for (let attempt = 1; ; attempt += 1) {
      const earlier = await previousRun(commandId, requestHash);
      if (earlier !== undefined) {
        const { state } = await loadBalance(eventStore, context.balanceId);
        if (state.status !== 'open') throw new BalanceNotOpenError('the credit balance does not exist');
        return { balance: state, events: earlier, replayed: true };
      }
      const loaded = await loadBalance(eventStore, context.balanceId);
      const events = decide(command(), loaded.state);
      const after = events.reduce(evolve, loaded.state);
      if (after.status !== 'open') throw new BalanceNotOpenError('the credit balance does not exist');
      if (events.length === 0) return { balance: after, events: [], replayed: false };
      const toAppend = toEventsToAppend(events, context, commandId, { requestHash });
      try {
        const result = await eventStore.appendToStream(streamId, toAppend, {
          expectedRevision: expectedRevisionOf(loaded.revision),
        });
        const recorded = await eventStore.readEventsById(toAppend.map((event) => event.id));
        const ordered = recorded.map(fromRecordedEvent).sort((a, b) => (a.revision < b.revision ? -1 : 1));
        if (!result.idempotent) return { balance: after, events: ordered, replayed: false };
        // Another writer stored this very command between our check and our append.
        const { state } = await loadBalance(eventStore, context.balanceId);
        return { balance: state.status === 'open' ? state : after, events: ordered, replayed: true };
      } catch (error) {
        if (!isWrongExpectedRevision(error)) throw error;
        if (attempt >= maxAttempts) {
          throw new ConcurrencyExhaustedError(`gave up after ${attempt} conflicting writes on balance ${context.balanceId}`, {
            cause: error,
          });
        }
        logger.debug({ balanceId: context.balanceId, attempt }, 'expected revision conflict; re-deciding');
        // Full-jitter exponential backoff (capped): writers that keep colliding on one stream,
        // e.g. two API processes, spread out instead of retrying in lockstep until one gives up.
        const ceiling = Math.min(MAX_BACKOFF_MS, 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, randomInt(0, ceiling + 1)));
      }
    }
  }

  function requestCommandId(balanceId: string, operation: string, options: RequestOptions | undefined): string {
    // Without an Idempotency-Key every request is a new command: a random id.
    return options?.idempotencyKey === undefined
      ? `${operation}:${balanceId}:${randomUUID()}`
      : commandIds.request(balanceId, operation, options.idempotencyKey);
  }

  return {
    async openBalance(request) {
      const product = await catalog.getProduct(request.productId);
      if (product === undefined) throw new ProductNotFoundError(`no credit product with id "${request.productId}"`);
      let balanceId = request.balanceId ?? randomUUID();
      try {
        await catalog.registerBalance({ id: balanceId, customerId: request.customerId, productId: request.productId });
      } catch (error) {
        if (!(error instanceof DuplicateBalanceError)) throw error;
        // The registry row is written before the stream: a crash in between leaves a row
        // without a stream, and the next request for the pair completes that opening.
        const existing = await loadBalance(eventStore, error.existingBalanceId);
        if (existing.revision !== NO_STREAM) throw error;
        balanceId = error.existingBalanceId;
      }
      const context = { balanceId, customerId: request.customerId, productId: request.productId };
      const threshold = request.lowBalanceThreshold === undefined ? product.lowBalanceThreshold : request.lowBalanceThreshold;
      const name = request.name ?? product.name;
      if (name.trim().length === 0) throw new ValidationError('name must not be empty');
      const at = clock().toISOString();
      return execute(context, commandIds.open(balanceId), () => ({
        type: 'OpenBalance',
        balanceId,
        customerId: request.customerId,
        productId: request.productId,
        name,
        lowBalanceThreshold: threshold,
        startingBalance: request.startingBalance,
        at,
      }));
    },

    async topUp(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      return execute(
        context,
        requestCommandId(balanceId, 'top-up', requestOptions),
        () => ({ type: 'TopUp', credits: input.credits, source: 'manual', reason: input.reason, at }),
        requestOptions?.requestHash,
      );
    },

    async deduct(balanceId, input, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      return execute(
        context,
        requestCommandId(balanceId, 'deduction', requestOptions),
        () => ({ type: 'DeductManually', credits: input.credits, reason: input.reason, at }),
        requestOptions?.requestHash,
      );
    },

    async purchase(balanceId, purchase, requestOptions) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      const { credits, ...details } = purchase;
      return execute(
        context,
        requestCommandId(balanceId, 'purchase', requestOptions),
        () => ({ type: 'TopUp', credits, source: 'purchase', reason: null, purchase: details, at }),
        requestOptions?.requestHash,
      );
    },

    async grant(balanceId, grant) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      const { credits, productId, ...details } = grant;
      return execute(context, commandIds.grant(details.subscriptionId, productId, details.period), () => ({
        type: 'TopUp',
        credits,
        source: 'grant',
        reason: null,
        grant: details,
        at,
      }));
    },

    async changeSettings(balanceId, input) {
      const context = await contextOf(balanceId);
      const at = clock().toISOString();
      return execute(context, `settings:${balanceId}:${randomUUID()}`, () => ({ type: 'ChangeSettings', ...input, at }));
    },

    async getBalance(balanceId) {
      const { state, revision } = await loadBalance(eventStore, balanceId);
      if (state.status !== 'open') throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      return { balance: state, revision };
    },

    async readLedger(balanceId, page) {
      const streamId = balanceStreamId(balanceId);
      if (page.before !== undefined && page.before <= 0n) return { items: [], next: null };
      const recorded = await eventStore.readStream(streamId, {
        direction: 'backwards',
        ...(page.before !== undefined ? { fromRevision: page.before - 1n } : {}),
        maxCount: page.limit + 1,
      });
      if (recorded.length === 0 && page.before === undefined) {
        throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
      }
      const items = recorded.slice(0, page.limit).map(fromRecordedEvent);
      const last = items[items.length - 1];
      return { items, next: recorded.length > page.limit && last !== undefined ? last.revision : null };
    },
  };
}
