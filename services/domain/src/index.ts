export * from './errors';
export * from './credits';
export * from './decimal';
export * from './creditProduct';
export * from './usageEvent';
export * from './cost';
export * from './balance';
export * from './ledgerEventCodec';
export * from './streams';
export * from './wellFormedText';
export type { ActingKey } from './actingKey';
export { isoFromMillis } from './isoFromMillis';
export { isoInstantOf } from './isoInstantOf';
export {
  ENTRY_OVERHEAD_BYTES,
  estimatedArrayBytes,
  estimatedBigIntBytes,
  estimatedObjectBytes,
  estimatedStringBytes,
  estimatedTextBytes,
  LruCache,
} from './lruCache';
