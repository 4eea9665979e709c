export * from './catalogErrors';
export * from './catalogStore';
export * from './postgresCatalogStore';
export * from './catalogCache';
