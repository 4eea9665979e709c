export * from './deterministicId';
export * from './ledgerEvents';
export * from './balanceLoader';
export * from './ledgerErrors';
export * from './ledgerService';
