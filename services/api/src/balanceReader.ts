/**
 * What the API needs of the balance read model (the Redis projection in @tally/projections).
 * Declared here, narrowly, so the API depends on three reads and not on how they are served.
 */
export interface BalanceSnapshotView {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name: string;
  /** Decimal strings, as formatCredits writes them. */
  readonly balance: string;
  readonly lowBalanceThreshold: string | null;
  readonly belowThreshold: boolean;
  /** Global position of the last event folded in, as a decimal string. */
  readonly position: string;
  readonly updatedAt: string;
}

export interface BalanceReader {
  getBalance(balanceId: string): Promise<BalanceSnapshotView | undefined>;
  getCustomerBalances(customerId: string): Promise<readonly BalanceSnapshotView[]>;
  /** The global position up to which every event is reflected in the snapshots. */
  checkpoint(): Promise<bigint>;
}
