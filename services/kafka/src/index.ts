export { createKafka } from './createKafka';
export { registerCompressionCodecs, compressionType, COMPRESSION_NAMES, type CompressionName } from './compressionCodecs';
export { undecodableBatchOf, type UndecodableBatch } from './undecodableBatch';
export { kafkaConnectionConfig, type KafkaConnection } from './kafkaConnection';
export { readTopicToEnds, type ReadTopicToEndsOptions } from './readTopicToEnds';
export { readBatchAt, type ReadBatchAtOptions } from './readBatchAt';
export { offsetPlace, type OffsetPlace, type PartitionWatermarks } from './offsetPlace';
export { failWorkerOnCrash } from './failWorkerOnCrash';
export { sendInParts, topicSendBudget, type SendBudget, type SendInPartsOptions } from './sendParts';
