export * from './ledgerEventPayloads';
