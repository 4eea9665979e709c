export * from './ledgerRelay';
export * from './ledgerEventRecord';
export * from './checkpointStore';
