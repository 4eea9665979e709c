import { logLevel, type logCreator } from 'kafkajs';
import type { Logger } from 'pino';

/**
 * Routes kafkajs's own logging into pino instead of its console output. kafkajs logs every failed
 * attempt of an operation it is still retrying at ERROR (a broker restart produces dozens); those
 * become warnings here, because the caller logs the failures that are left once retries end.
 */
export function pinoLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }) => {
      const { message, timestamp: _timestamp, ...fields } = log;
      const child = { kafkajs: namespace, ...fields };
      if (level === logLevel.ERROR || level === logLevel.WARN) logger.warn(child, message);
      else if (level === logLevel.INFO) logger.info(child, message);
      else logger.debug(child, message);
    };
}
