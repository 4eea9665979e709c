export { createPool, DEFAULT_CONNECTION_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, QUERY_TIMEOUT_MARGIN_MS, type CreatePoolOptions } from './createPool';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate';
export { listMigrations, selectMigrationFiles, DEFAULT_MIGRATIONS_DIR, type Migration } from './listMigrations';
export { isTransientPgError, isUniqueViolation } from './isTransientPgError';
export { assertSqlIdentifier, quoteIdentifier } from './sqlIdentifier';
export { tryAcquireAdvisoryLease, leaseHolders, LEASE_LOCK_CLASS, type AdvisoryLease, type AdvisoryLeaseOptions } from './advisoryLease';
export { queryWithTimeout } from './queryWithTimeout';
export { NotificationListener, type NotificationWaker } from './notificationListener';
