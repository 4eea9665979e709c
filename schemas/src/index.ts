export * from './ledgerEventPayloads';
export * from './ledgerEventAvroSchema';
