import { createKafka } from '@tally/kafka';
import { logLevel, type Kafka } from 'kafkajs';
import pino from 'pino';
import { stackConfig } from './stackConfig';

/**
 * A kafkajs client for the local stack's brokers. kafkajs writes its own console logs; they go
 * through pino instead, silent unless TALLY_TEST_LOG_LEVEL asks for them.
 */
export function createTestKafka(clientId: string): Kafka {
  const logger = pino({ name: 'kafkajs', level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
  return createKafka({
    clientId,
    brokers: [...stackConfig.kafkaBrokers],
    logLevel: logLevel.INFO,
    logger,
  });
}
