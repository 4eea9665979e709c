export * from './catalogErrors';
export * from './catalogStore';
export * from './postgresCatalogStore';
export * from './catalogCache';
export * from './balanceRegistryCache';
export * from './customerDirectory';
