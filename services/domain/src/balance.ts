import { Micros } from './credits';
import { BalanceAlreadyOpenError, BalanceNotOpenError, InvalidAmountError, ValidationError } from './errors';

/**
 * A credit balance (one per customer and credit product) as a pure decider:
 * `decide(command, state)` returns the events a command causes and `evolve(state, event)`
 * folds one event into the state. No I/O, no clock, no randomness: the time of a command
 * (`at`, ISO-8601) and every id come in as data, so a replay folds to the same state.
 */

export type TopUpSource = 'starting' | 'manual' | 'purchase' | 'grant';
export type ConsumptionSource = 'usage' | 'manual';

export interface PurchaseDetails {
  readonly bundleId: string;
  readonly quantity: number;
  readonly unitPrice: string;
  readonly totalPrice: string;
  readonly currency: string;
}

export interface GrantDetails {
  readonly subscriptionId: string;
  readonly planId: string;
  /** 0-based index of the billing period. */
  readonly period: number;
  readonly periodStart: string;
  readonly periodEnd: string;
}

export interface UsageDetails {
  readonly eventId: string;
  readonly event: string;
  /** When the usage happened, ISO-8601. */
  readonly timestamp: string;
  readonly quantity: string;
}

export type BalanceEvent =
  | {
      readonly type: 'CreditBalanceOpened';
      readonly balanceId: string;
      readonly customerId: string;
      readonly productId: string;
      readonly name: string;
      readonly lowBalanceThreshold: Micros | null;
      readonly occurredAt: string;
    }
  | {
      readonly type: 'CreditToppedUp';
      readonly credits: Micros;
      readonly source: TopUpSource;
      readonly reason: string | null;
      readonly balanceAfter: Micros;
      readonly purchase: PurchaseDetails | null;
      readonly grant: GrantDetails | null;
      readonly occurredAt: string;
    }
  | {
      readonly type: 'CreditConsumed';
      readonly credits: Micros;
      readonly source: ConsumptionSource;
      readonly reason: string | null;
      readonly usage: UsageDetails | null;
      readonly balanceAfter: Micros;
      readonly occurredAt: string;
    }
  | { readonly type: 'LowBalanceWarned'; readonly threshold: Micros; readonly balance: Micros; readonly occurredAt: string }
  | { readonly type: 'CreditBalanceDepleted'; readonly balance: Micros; readonly occurredAt: string }
  | {
      readonly type: 'CreditBalanceSettingsChanged';
      readonly name: string;
      readonly lowBalanceThreshold: Micros | null;
      readonly occurredAt: string;
    };

export type BalanceEventType = BalanceEvent['type'];

export type BalanceCommand =
  | {
      readonly type: 'OpenBalance';
      readonly balanceId: string;
      readonly customerId: string;
      readonly productId: string;
      readonly name: string;
      readonly lowBalanceThreshold: Micros | null;
      readonly startingBalance: Micros;
      readonly at: string;
    }
  | {
      readonly type: 'TopUp';
      readonly credits: Micros;
      readonly source: Exclude<TopUpSource, 'starting'>;
      readonly reason: string | null;
      readonly purchase?: PurchaseDetails;
      readonly grant?: GrantDetails;
      readonly at: string;
    }
  | { readonly type: 'ConsumeUsage'; readonly credits: Micros; readonly usage: UsageDetails; readonly at: string }
  | { readonly type: 'DeductManually'; readonly credits: Micros; readonly reason: string | null; readonly at: string }
  | {
      readonly type: 'ChangeSettings';
      readonly name?: string;
      /** null clears the override; undefined leaves it. */
      readonly lowBalanceThreshold?: Micros | null;
      readonly at: string;
    };

export interface OpenBalance {
  readonly status: 'open';
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name: string;
  readonly lowBalanceThreshold: Micros | null;
  readonly balance: Micros;
  /** A LowBalanceWarned is outstanding: no other until the balance is back at or above the threshold. */
  readonly warned: boolean;
  readonly updatedAt: string;
}

export type BalanceState = { readonly status: 'unopened' } | OpenBalance;

export const initialBalanceState: BalanceState = { status: 'unopened' };

/**
 * Version of what `evolve` makes of a stream. Stored snapshots of balances (@tally/ledger) are
 * folds cached at a revision and are only trusted at the version they were made with: bump this
 * whenever `evolve` or `BalanceState` changes meaning, and every older snapshot is ignored (the
 * balance is folded from its stream again). The ledger's golden-state test fails until it is.
 */
export const BALANCE_FOLD_VERSION = 1;

function assertNever(value: never): never {
  throw new Error(`Unhandled variant: ${JSON.stringify(value)}`);
}

function requireOpen(state: BalanceState): OpenBalance {
  if (state.status !== 'open') throw new BalanceNotOpenError('the credit balance does not exist');
  return state;
}

function requirePositive(credits: Micros, what: string): void {
  if (credits <= 0n) throw new InvalidAmountError(`${what} must be greater than 0`);
}

/**
 * The warnings a balance change causes. A LowBalanceWarned fires when the balance is below
 * the threshold and none is outstanding (so exactly once per crossing, also when a raised
 * threshold makes the crossing); CreditBalanceDepleted when a change takes it from above
 * zero to zero or below.
 */
function warnings(before: OpenBalance, after: OpenBalance, at: string): BalanceEvent[] {
  const events: BalanceEvent[] = [];
  const threshold = after.lowBalanceThreshold;
  if (threshold !== null && after.balance < threshold && !after.warned) {
    events.push({ type: 'LowBalanceWarned', threshold, balance: after.balance, occurredAt: at });
  }
  if (before.balance > 0n && after.balance <= 0n) {
    events.push({ type: 'CreditBalanceDepleted', balance: after.balance, occurredAt: at });
  }
  return events;
}

/** Appends the warnings that follow a change: evolve first, so the check sees the new balance. */
function withWarnings(state: OpenBalance, change: BalanceEvent[], at: string): BalanceEvent[] {
  const after = change.reduce(evolve, state as BalanceState) as OpenBalance;
  return [...change, ...warnings(state, after, at)];
}

export function decide(command: BalanceCommand, state: BalanceState): BalanceEvent[] {
  switch (command.type) {
    case 'OpenBalance': {
      if (state.status === 'open') throw new BalanceAlreadyOpenError('the credit balance is already open');
      if (command.startingBalance < 0n) throw new InvalidAmountError('startingBalance must not be negative');
      // The same rules as ChangeSettings: otherwise a balance opened with them could never be renamed.
      if (command.name.trim().length === 0) throw new ValidationError('name must not be empty');
      if (command.lowBalanceThreshold !== null && command.lowBalanceThreshold < 0n) {
        throw new InvalidAmountError('lowBalanceThreshold must not be negative');
      }
      const opened: BalanceEvent = {
        type: 'CreditBalanceOpened',
        balanceId: command.balanceId,
        customerId: command.customerId,
        productId: command.productId,
        name: command.name,
        lowBalanceThreshold: command.lowBalanceThreshold,
        occurredAt: command.at,
      };
      const openedState = evolve(state, opened) as OpenBalance;
      // The starting balance is a top-up with source `starting`, so the ledger shows it.
      const start: BalanceEvent[] =
        command.startingBalance > 0n
          ? [
              {
                type: 'CreditToppedUp',
                credits: command.startingBalance,
                source: 'starting',
                reason: null,
                balanceAfter: command.startingBalance,
                purchase: null,
                grant: null,
                occurredAt: command.at,
              },
            ]
          : [];
      return [opened, ...withWarnings(openedState, start, command.at)];
    }
    case 'TopUp': {
      const open = requireOpen(state);
      requirePositive(command.credits, 'credits');
      return withWarnings(
        open,
        [
          {
            type: 'CreditToppedUp',
            credits: command.credits,
            source: command.source,
            reason: command.reason,
            balanceAfter: open.balance + command.credits,
            purchase: command.purchase ?? null,
            grant: command.grant ?? null,
            occurredAt: command.at,
          },
        ],
        command.at,
      );
    }
    case 'ConsumeUsage': {
      const open = requireOpen(state);
      // Usage has already happened: consumption is never refused, the balance may go negative.
      if (command.credits < 0n) throw new InvalidAmountError('consumed credits must not be negative');
      if (command.credits === 0n) return [];
      return withWarnings(
        open,
        [
          {
            type: 'CreditConsumed',
            credits: command.credits,
            source: 'usage',
            reason: null,
            usage: command.usage,
            balanceAfter: open.balance - command.credits,
            occurredAt: command.at,
          },
        ],
        command.at,
      );
    }
    case 'DeductManually': {
      const open = requireOpen(state);
      requirePositive(command.credits, 'credits');
      return withWarnings(
        open,
        [
          {
            type: 'CreditConsumed',
            credits: command.credits,
            source: 'manual',
            reason: command.reason,
            usage: null,
            balanceAfter: open.balance - command.credits,
            occurredAt: command.at,
          },
        ],
        command.at,
      );
    }
    case 'ChangeSettings': {
      const open = requireOpen(state);
      const name = command.name ?? open.name;
      if (name.trim().length === 0) throw new ValidationError('name must not be empty');
      const threshold = command.lowBalanceThreshold === undefined ? open.lowBalanceThreshold : command.lowBalanceThreshold;
      if (threshold !== null && threshold < 0n) throw new InvalidAmountError('lowBalanceThreshold must not be negative');
      if (name === open.name && threshold === open.lowBalanceThreshold) return [];
      return withWarnings(
        open,
        [{ type: 'CreditBalanceSettingsChanged', name, lowBalanceThreshold: threshold, occurredAt: command.at }],
        command.at,
      );
    }
    default:
      return assertNever(command);
  }
}

/** After a balance or threshold change, an outstanding warning ends once the balance is back at or above it. */
function settleWarning(state: OpenBalance): OpenBalance {
  const threshold = state.lowBalanceThreshold;
  return state.warned && (threshold === null || state.balance >= threshold) ? { ...state, warned: false } : state;
}

export function evolve(state: BalanceState, event: BalanceEvent): BalanceState {
  switch (event.type) {
    case 'CreditBalanceOpened':
      return {
        status: 'open',
        balanceId: event.balanceId,
        customerId: event.customerId,
        productId: event.productId,
        name: event.name,
        lowBalanceThreshold: event.lowBalanceThreshold,
        balance: 0n,
        warned: false,
        updatedAt: event.occurredAt,
      };
    case 'CreditToppedUp': {
      // The balance is the fold of credits; balanceAfter is a record for readers, and the
      // property tests check that the two never drift apart.
      const open = requireOpen(state);
      return settleWarning({ ...open, balance: open.balance + event.credits, updatedAt: event.occurredAt });
    }
    case 'CreditConsumed': {
      const open = requireOpen(state);
      return settleWarning({ ...open, balance: open.balance - event.credits, updatedAt: event.occurredAt });
    }
    case 'LowBalanceWarned':
      return { ...requireOpen(state), warned: true };
    case 'CreditBalanceDepleted':
      return state;
    case 'CreditBalanceSettingsChanged': {
      const open = requireOpen(state);
      return settleWarning({
        ...open,
        name: event.name,
        lowBalanceThreshold: event.lowBalanceThreshold,
        updatedAt: event.occurredAt,
      });
    }
    default:
      return assertNever(event);
  }
}

export function foldBalance(events: readonly BalanceEvent[], state: BalanceState = initialBalanceState): BalanceState {
  return events.reduce(evolve, state);
}
