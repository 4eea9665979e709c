import { BALANCE_FOLD_VERSION, type BalanceState, type OpenBalance, type FoldedBalance } from '@tally/domain';
import { LEDGER_EVENT_SCHEMA_VERSION } from '@tally/schemas';

/**
 * A stored balance state is a cached fold: the state `evolve` gives for a balance's stream up to
 * `revision`, nothing more (the read model's BalanceSnapshot, in @tally/projections, is another
 * thing: what the API serves). The stream stays the truth (a balance is the fold of its stream):
 * a stored state is read only at the version it was made with, so a new event schema or a changed
 * fold (BALANCE_FOLD_VERSION) makes every older one invisible and balances are folded again.
 */
export const BALANCE_STATE_VERSION = `events-v${LEDGER_EVENT_SCHEMA_VERSION}.fold-v${BALANCE_FOLD_VERSION}`;

/** Where folded states are kept: a small port, so the command path does not know PostgreSQL. */
export interface BalanceStateStore {
  /** The latest stored state of the balance at or before `atOrBefore` (any revision when absent), of the current version. */
  load(balanceId: string, atOrBefore?: bigint): Promise<FoldedBalance | undefined>;
  /** The latest stored state of each of these balances that has one, of the current version: one round trip for a batch writer. */
  loadLatest(balanceIds: readonly string[]): Promise<Map<string, FoldedBalance>>;
  /**
   * Keeps these folds; a state already kept at the same revision is left as it is (it is the same
   * fold). `replaceable`: states kept only to shorten the next load (write-behind, a load's long
   * tail, the operator's keep-balance-states), never a command's answer at its revision: each
   * replaces the stream's older replaceable ones, so a stream keeps one such row however often it
   * is flushed (migration 020).
   */
  save(states: readonly { readonly balanceId: string; readonly loaded: FoldedBalance }[], options?: { readonly replaceable?: boolean }): Promise<void>;
}

/** The JSON form of an open balance: micro-credits as integer strings, never numbers. */
interface EncodedBalanceState {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name: string;
  readonly lowBalanceThreshold: string | null;
  readonly balance: string;
  readonly held: string;
  /** The open holds by id, amounts as integer strings. */
  readonly holds: Readonly<Record<string, { credits: string; expiresAt: string; reference: string | null }>>;
  readonly overdraftLimit: string;
  readonly warned: boolean;
  readonly updatedAt: string;
}

export function encodeBalanceState(state: OpenBalance): EncodedBalanceState {
  return {
    balanceId: state.balanceId,
    customerId: state.customerId,
    productId: state.productId,
    name: state.name,
    lowBalanceThreshold: state.lowBalanceThreshold === null ? null : state.lowBalanceThreshold.toString(),
    balance: state.balance.toString(),
    held: state.held.toString(),
    holds: Object.fromEntries(
      Object.entries(state.holds).map(([holdId, hold]) => [holdId, { credits: hold.credits.toString(), expiresAt: hold.expiresAt, reference: hold.reference }]),
    ),
    overdraftLimit: state.overdraftLimit.toString(),
    warned: state.warned,
    updatedAt: state.updatedAt,
  };
}

const INTEGER = /^-?\d{1,30}$/;

function micros(value: unknown, field: string): bigint {
  if (typeof value !== 'string' || !INTEGER.test(value)) throw new Error(`balance snapshot: ${field} is not an integer string`);
  return BigInt(value);
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new Error(`balance snapshot: ${field} is not a string`);
  return value;
}

function decodeHolds(value: unknown): OpenBalance['holds'] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('balance snapshot: holds is not an object');
  // fromEntries, not assignment: every id stays an own property, `__proto__` included.
  return Object.fromEntries(
    Object.entries(value as Record<string, Record<string, unknown>>).map(([holdId, hold]) => [
      holdId,
      {
        credits: micros(hold.credits, `holds.${holdId}.credits`),
        expiresAt: text(hold.expiresAt, `holds.${holdId}.expiresAt`),
        reference: hold.reference === null ? null : text(hold.reference, `holds.${holdId}.reference`),
      },
    ]),
  );
}

/** Reads back what encodeBalanceState wrote; a row that does not parse is a bug, not data to guess at. */
export function decodeBalanceState(encoded: unknown): BalanceState {
  const row = (encoded ?? {}) as Record<string, unknown>;
  if (typeof row.warned !== 'boolean') throw new Error('balance snapshot: warned is not a boolean');
  return {
    status: 'open',
    balanceId: text(row.balanceId, 'balanceId'),
    customerId: text(row.customerId, 'customerId'),
    productId: text(row.productId, 'productId'),
    name: text(row.name, 'name'),
    lowBalanceThreshold: row.lowBalanceThreshold === null ? null : micros(row.lowBalanceThreshold, 'lowBalanceThreshold'),
    balance: micros(row.balance, 'balance'),
    held: micros(row.held, 'held'),
    holds: decodeHolds(row.holds),
    overdraftLimit: micros(row.overdraftLimit, 'overdraftLimit'),
    warned: row.warned,
    updatedAt: text(row.updatedAt, 'updatedAt'),
  };
}
