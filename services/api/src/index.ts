export { buildApp, type ApiDeps, type ApiOptions } from './buildApp';
export { API_SCOPES, parseApiKeys, type ApiKey, type ApiScope, type RouteScope } from './apiScopes';
export { DEFAULT_RATE_LIMITS, RATE_LIMIT_REDIS_CLIENT, type RateLimitOptions } from './accessGuard';
export type { BalanceView } from './balances/balanceView';
export type { LedgerEntryView } from './ledger/ledgerEntryView';
export type { DeadLetterView } from './operations/deadLetterRoutes';
export type { HealthCheck } from './operations/healthRoutes';
export { mapError, type ErrorBody, type MappedError } from './errorMapping';
export { NotConsistentError } from './balances/waitForConsistency';
