export * from './eventStore';
export * from './errors';
export { createPostgresEventStore, DEFAULT_NOTIFY_CHANNEL } from './createPostgresEventStore';
export { streamRuns } from './streamRuns';
export { createEventStoreDbEventStore, EVENTSTOREDB_MAX_CONSUMER_BATCH_SIZE, type EventStoreDbClient } from './createEventStoreDbEventStore';
export { decodePayload, encodePayload, type EventShape } from './eventPayloadCodec';
