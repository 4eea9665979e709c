export * from './ledgerRelay';
export * from './ledgerEventRecord';
export * from './exampleBillingConsumer';
export * from './rewindLedgerRelay';
export * from './ledgerRelayErrors';
export * from './registerSchema';
