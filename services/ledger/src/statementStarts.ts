import type { FoldedBalance } from '@tally/domain';

/**
 * Where a statement fold found a period's edge: `revision` is the first entry of the balance
 * recorded at or after `at` (epoch milliseconds), and `before` the balance's fold up to the
 * revision before it. Fixed once that entry exists: no entry before it is ever rewritten.
 */
export interface StatementBoundary {
  readonly at: number;
  readonly revision: bigint;
  readonly before: FoldedBalance;
}

/** A statement start as StatementStarts.before finds it (see there). */
export type StatementStart = Pick<StatementBoundary, 'at' | 'before'>;

/**
 * Where a statement can start folding instead of the ledger's first entry: a small port, so the
 * API does not know PostgreSQL. Only a cache of folds of the stream: what it holds never changes
 * a statement, only how much of the ledger one reads.
 */
export interface StatementStarts {
  /**
   * Where the statement of a period beginning at `from` can be folded from exactly: the latest
   * instant kept at or before `from`, and a fold of the balance up to some revision before the
   * first entry recorded at or after it (the one just before, or an earlier stored state), so
   * every entry after `before` is read by the fold and every entry up to it was recorded before
   * `at`. Undefined when none is kept, and the fold starts at the ledger's beginning.
   */
  before(balanceId: string, from: number): Promise<StatementStart | undefined>;
  /** Keeps what a fold found; a boundary already kept is left as it is (it is the same). */
  keep(balanceId: string, boundaries: readonly StatementBoundary[]): Promise<void>;
}
