export { buildApp, DEFAULT_PORTAL_MAX_PURCHASE_QUANTITY, type ApiDeps, type ApiOptions } from './buildApp';
export { API_SCOPES, parseApiKeys, type ApiKey, type ApiScope, type RouteScope } from './apiScopes';
export { keyIdOf } from './bearerAuth';
export { DEFAULT_RATE_LIMITS, RATE_LIMIT_REDIS_CLIENT, type RateLimitOptions } from './accessGuard';
export type { BalanceView } from './balances/balanceView';
export type { LedgerEntryView } from './ledger/ledgerEntryView';
export type { BalanceStatementView } from './ledger/balanceStatementView';
export type { UsageEntriesView } from './ledger/usageEntriesView';
export type { AutoRechargeView } from './purchases/autoRechargeRoutes';
export { createLedgerHistory, type LedgerHistory } from './ledger/ledgerHistory';
export type { DeadLetterView, RedriveView, WholeDeadLetterView } from './operations/deadLetterRoutes';
export type { WebhookDeliveryView, WebhookEndpointView, WebhookTestResultView } from './webhooks/webhookRoutes';
export type { WebhookEventType } from '@tally/schemas';
export { healthRoutes, type HealthCheck, type HealthView } from './operations/healthRoutes';
// Also served alone, beside /health, by a process without the api role (services/tally's operationsListener).
export { metricsRoutes } from './operations/metricsRoutes';
export type { ProcessorsView, ReadProcessors } from './operations/processorRoutes';
export { mapError, type ErrorBody, type MappedError } from './errorMapping';
export { NotConsistentError } from './balances/waitForConsistency';
