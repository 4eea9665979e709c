export { createUsageConsumer, usageConsumerKafkaSettings, type UsageConsumer } from './usageConsumer';
export {
  DEFAULT_SESSION_TIMEOUT_MS,
  DEFAULT_STATE_FLUSH_MS,
  DEFAULT_MAX_FETCH_BYTES,
  DEFAULT_CONSUMER_BATCH_SIZE,
  MAX_CONSUMER_BATCH_SIZE,
  DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
  CONSUMER_MAX_OLD_SPACE_MIB,
  CONSUMER_MAX_SEMI_SPACE_MIB,
  CONSUMER_NODE_OPTIONS,
  DEFAULT_BALANCE_CACHE_BYTES,
  DEFAULT_BALANCE_CACHE_SIZE,
  DEFAULT_REGISTRY_CACHE_BYTES,
  MAX_PARTITIONS_CONCURRENTLY,
  DEFAULT_PARTITIONS_CONCURRENTLY,
  partitionsAtOnce,
  UsageConsumerOptionsError,
  type UsageConsumerOptions,
  type UsageConsumerMetrics,
  type UsageBatchMetrics,
  type PartitionHoldReason,
} from './usageConsumerOptions';
export type { UsageConsumerCounters } from './usageConsumerCounters';
export type { PartitionGroupLag } from './consumerGroupLag';
export type { SkipReason } from './priceUsageBatch';
export { createUsageEventDecoder, type UsageEventDecoder, type UsageEventDecoderOptions, type UsageRecord } from './usageEventDecoder';
export { DEAD_LETTER_HEADERS } from './deadLetterMessage';
export * from './meteringErrors';
export { type StalledPartition } from './stalledPartitions';
export {
  skipUndecodableBatch,
  SkipBatchRefusedError,
  type SkipUndecodableBatchOptions,
  type SkippedBatch,
} from './skipUndecodableBatch';
export { usageEventFromJson, cloudEventUsageId } from './cloudEventUsage';
export { createUsagePublisher, UsagePublishError, UsageEventTooLargeError, type UsagePublished, type UsagePublisher, type UsagePublisherOptions, type UsageToPublish } from './usagePublisher';
export * from './deadLetterRecord';
export * from './deadLetterLog';
export * from './deadLetterReader';
export * from './deadLetterPlace';
export * from './deadLetterRecorder';
export * from './deadLetterRedrives';
export {
  redriveDeadLetters,
  redriveDecision,
  REDRIVEN_FROM_HEADER,
  type RedriveDeadLettersOptions,
  type RedriveResult,
  type RedriveSkipReason,
} from './redriveDeadLetters';
