export { createPool, QUERY_TIMEOUT_MARGIN_MS } from './createPool';
export { migrate } from './migrate';
export { listMigrations, selectMigrationFiles, DEFAULT_MIGRATIONS_DIR, type Migration } from './listMigrations';
export { isTransientPgError, isUniqueViolation } from './isTransientPgError';
export { assertSqlIdentifier, quoteIdentifier } from './sqlIdentifier';
export { tryAcquireAdvisoryLease, leaseHolders, type AdvisoryLease, type AdvisoryLeaseOptions } from './advisoryLease';
export { queryWithTimeout } from './queryWithTimeout';
export { NotificationListener } from './notificationListener';
export { integerArrayLiteral, textArrayLiteral } from './arrayLiteral';
