export * from './ledgerRelay';
export * from './ledgerEventRecord';
export * from './exampleBillingConsumer';
