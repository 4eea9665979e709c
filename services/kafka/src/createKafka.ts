import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import type { Logger } from 'pino';
import { registerCompressionCodecs } from './compressionCodecs';

interface CreateKafkaOptions extends Omit<KafkaConfig, 'logCreator'> {
  /** Where kafkajs's own log goes (a child with component: kafkajs); without it, nowhere but logLevel's console output. */
  readonly logger?: Logger;
}

/**
 * The one way Tally makes a Kafka client: the codecs every producer may use (gzip, snappy, lz4,
 * zstd) are registered before the first client exists, so no consumer meets a batch it cannot read
 * for want of a codec; and kafkajs logs through the caller's pino logger, mapped one way for
 * every client (kafkaLogCreator).
 */
export function createKafka(options: CreateKafkaOptions): Kafka {
  registerCompressionCodecs();
  const { logger, ...config } = options;
  return new Kafka({ ...config, ...(logger !== undefined ? { logCreator: kafkaLogCreator(logger) } : {}) });
}

/**
 * Routes kafkajs's own logging into pino instead of its console output. kafkajs logs every failed
 * attempt of an operation it is still retrying at ERROR (a broker restart produces dozens); those
 * become warnings here, because the caller logs the failures that are left once retries end.
 */
function kafkaLogCreator(logger: Logger): logCreator {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  return () =>
    ({ namespace, level, log }) => {
      const { message, timestamp: _timestamp, ...fields } = log;
      const entry = { namespace, ...fields };
      if (level === logLevel.ERROR || level === logLevel.WARN) kafkaLogger.warn(entry, message);
      else if (level === logLevel.INFO) kafkaLogger.info(entry, message);
      else kafkaLogger.debug(entry, message);
    };
}
