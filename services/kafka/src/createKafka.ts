import { Kafka, type KafkaConfig } from 'kafkajs';
import { registerCompressionCodecs } from './compressionCodecs';

/**
 * The one way Tally makes a Kafka client: the codecs every producer may use (gzip, snappy, lz4,
 * zstd) are registered before the first client exists, so no consumer meets a batch it cannot read
 * for want of a codec.
 */
export function createKafka(config: KafkaConfig): Kafka {
  registerCompressionCodecs();
  return new Kafka(config);
}
