import {
  DEFAULT_CONSUMER_BATCH_SIZE,
  DEFAULT_MAX_FETCH_BYTES,
  DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
  DEFAULT_PARTITIONS_CONCURRENTLY,
  DEFAULT_SESSION_TIMEOUT_MS,
  usageConsumerKafkaSettings,
} from '@tally/metering';
import { ceilingConsumerSettings } from './kafkajsDecodeCeiling';
import { USAGE_PARTITIONS } from './usageTopic';

describe('ceilingConsumerSettings', () => {
  it("are the metering consumer's defaults: fetch sizes, session, partitions at once, chunk size", () => {
    const settings = ceilingConsumerSettings(USAGE_PARTITIONS);
    // What createUsageConsumer hands kafkajs with its default options.
    expect(settings.consumer).toEqual(
      usageConsumerKafkaSettings({ sessionTimeoutMs: DEFAULT_SESSION_TIMEOUT_MS, maxFetchBytes: DEFAULT_MAX_FETCH_BYTES, maxFetchBytesPerPartition: DEFAULT_MAX_FETCH_BYTES_PER_PARTITION }),
    );
    expect(settings.consumer).toMatchObject({ sessionTimeout: DEFAULT_SESSION_TIMEOUT_MS, maxBytes: DEFAULT_MAX_FETCH_BYTES, maxBytesPerPartition: DEFAULT_MAX_FETCH_BYTES_PER_PARTITION });
    expect(settings.partitionsConsumedConcurrently).toBe(DEFAULT_PARTITIONS_CONCURRENTLY);
    expect(settings.chunkSize).toBe(DEFAULT_CONSUMER_BATCH_SIZE);
    // The bench's own values as of this writing, so that a change of either side is seen here.
    expect([settings.consumer.maxBytes, settings.consumer.maxBytesPerPartition, settings.partitionsConsumedConcurrently, settings.chunkSize]).toEqual([
      1024 * 1024,
      256 * 1024,
      2,
      1000,
    ]);
  });

  it('takes no more partitions at once than the topic has, as the consumer does', () => {
    expect(ceilingConsumerSettings(1).partitionsConsumedConcurrently).toBe(1);
  });
});
