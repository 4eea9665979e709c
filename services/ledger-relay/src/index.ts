export * from './ledgerRelay';
export * from './ledgerEventRecord';
export * from './checkpointStore';
export * from './exampleBillingConsumer';
