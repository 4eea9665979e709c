export * from './ledgerEventPayloads';
export * from './usageEventSchema';
export * from './ledgerEventAvroSchema';
export * from './webhookPayloads';
