/**
 * Where a balance lives: the registry row, not its amount (that is the fold of its stream). The
 * row's creation time stays in the table, where it orders a customer's balances: nothing reads it
 * here, and a Date per row read (and per balance on every registry cache hit) cost the metering
 * consumer for nothing.
 */
export interface BalanceRef {
  readonly id: string;
  readonly customerId: string;
  readonly productId: string;
}

/**
 * The balance registry (the credit_balances table): which balances exist, whose, and of which
 * product, one per customer and product. The ledger registers a balance before its stream's
 * first event; everything that finds a customer's balances reads it here.
 */
export interface BalanceRegistry {
  /** Throws DuplicateBalanceError when the customer already has a balance of this product. */
  registerBalance(balance: { id: string; customerId: string; productId: string }): Promise<BalanceRef>;
  getBalance(balanceId: string): Promise<BalanceRef | undefined>;
  findBalance(customerId: string, productId: string): Promise<BalanceRef | undefined>;
  listCustomerBalances(customerId: string): Promise<BalanceRef[]>;
  /** Balances of many customers in one query: the metering consumer asks once per batch. */
  balancesOfCustomers(customerIds: readonly string[]): Promise<Map<string, BalanceRef[]>>;
  /**
   * How long ago each of these balances was registered (ms; those not registered are left out),
   * measured by the database's clock, so that every process agrees whatever its own clock says.
   * The metering consumer waits for a balance's opening until balanceOpenWaitMs after it.
   */
  registrationAges(balanceIds: readonly string[]): Promise<Map<string, number>>;
}
