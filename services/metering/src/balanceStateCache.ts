// The cache is the ledger's (one command path for balances, issue 11); the consumer keeps its import.
export { createBalanceStateCache, type BalanceStateCache } from '@tally/ledger';
