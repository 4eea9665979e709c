export * from './eventStore';
export * from './errors';
export { createPostgresEventStore, DEFAULT_NOTIFY_CHANNEL, type PostgresEventStoreOptions } from './createPostgresEventStore';
export { streamRuns } from './streamRuns';
export {
  createEventStoreDbEventStore,
  DEFAULT_INTERNAL_PREFIX,
  type EventStoreDbClient,
  type EventStoreDbEventStoreOptions,
} from './createEventStoreDbEventStore';
export { decodePayload, encodePayload, type EncodedPayload, type EventShape } from './eventPayloadCodec';
