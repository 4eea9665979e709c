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

/**
 * Where a statement can start folding instead of the ledger's first entry: a small port, so the
 * API does not know PostgreSQL. Only a cache of folds of the stream: what it holds never changes
 * a statement, only how much of the ledger one reads.
 */
export interface StatementStarts {
  /**
   * A fold of the balance from which the statement of a period beginning at `from` can be folded
   * exactly: the state before the first entry recorded at or after some kept instant at or before
   * `from` (or an earlier stored state), so every entry after it is read by the fold; undefined
   * when none is kept, and the fold starts at the ledger's beginning.
   */
  before(balanceId: string, from: number): Promise<FoldedBalance | undefined>;
  /** Keeps what a fold found; a boundary already kept is left as it is (it is the same). */
  keep(balanceId: string, boundaries: readonly StatementBoundary[]): Promise<void>;
}
