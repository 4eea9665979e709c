import type { ConsumptionSource, FoldedBalance, Micros, TopUpSource } from '@tally/domain';

/** What a statement totals credits by, in the order it lists them. */
export const STATEMENT_TOP_UP_SOURCES = ['starting', 'manual', 'purchase', 'grant', 'refund'] as const satisfies readonly TopUpSource[];
export const STATEMENT_CONSUMPTION_SOURCES = ['usage', 'manual', 'hold'] as const satisfies readonly ConsumptionSource[];

/**
 * What a run of a balance's entries added and took, by source. Kept with a start, the sums of
 * every entry before it: a period's totals are then the difference of its two ends' sums, so a
 * statement need not read the entries between them.
 */
export interface StatementTotals {
  readonly toppedUp: Readonly<Record<TopUpSource, Micros>>;
  readonly consumed: Readonly<Record<ConsumptionSource, Micros>>;
}

/**
 * Where a statement fold found a period's edge: `revision` is the first entry of the balance
 * recorded at or after `at` (epoch milliseconds), `before` the balance's fold up to the revision
 * before it, and `totals` the sums of the entries before it. Fixed once that entry exists: no
 * entry before it is ever rewritten.
 */
export interface StatementBoundary {
  readonly at: number;
  readonly revision: bigint;
  readonly before: FoldedBalance;
  readonly totals: StatementTotals;
}

/** A statement start as StatementStarts.before finds it (see there). */
export type StatementStart = Pick<StatementBoundary, 'at' | 'before' | 'totals'>;

/**
 * Where a statement can start folding instead of the ledger's first entry: a small port, so the
 * API does not know PostgreSQL. Only a cache of folds of the stream: what it holds never changes
 * a statement, only how much of the ledger one reads.
 */
export interface StatementStarts {
  /**
   * The latest start kept at or before the instant `at`, with the fold of the balance and the sums
   * of its entries up to the revision before the first entry recorded at or after that start's
   * instant: every entry after `before` is one the fold reads, and every entry up to it was
   * recorded before the start's instant. Undefined when none is kept (or its stored fold is gone),
   * and the fold starts at the ledger's beginning.
   */
  before(balanceId: string, at: number): Promise<StatementStart | undefined>;
  /** Keeps what a fold found; a boundary already kept is left as it is (it is the same). */
  keep(balanceId: string, boundaries: readonly StatementBoundary[]): Promise<void>;
}
