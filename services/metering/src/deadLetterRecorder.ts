import { createKafka, kafkaConnectionConfig, superviseConsumer, type KafkaConnection } from '@tally/kafka';
import { createWorker, retry, type Worker } from '@tally/runtime';
import { logLevel } from 'kafkajs';
import type { Logger } from 'pino';
import type { DeadLetterLog } from './deadLetterLog';
import { deadLetterRecordOf } from './deadLetterRecord';

export interface DeadLetterRecorderOptions {
  readonly kafka: KafkaConnection;
  /** The dead-letter topic (TALLY_DLQ_TOPIC). */
  readonly topic: string;
  /** One group for every process that records: each dead letter is recorded by one of them. */
  readonly groupId: string;
  readonly log: Pick<DeadLetterLog, 'record'>;
  readonly logger: Logger;
}

/**
 * Reads the dead-letter topic into the dead-letter log, so that an operator sees a broken
 * producer in the console without reading Kafka. Offsets are committed after a batch is recorded
 * (kafkajs commits when eachBatch resolves), and recording is idempotent, so a crash in between
 * only records the batch again. A new group starts from the topic's beginning: the log keeps the
 * newest alone, whatever that reads. Redis being away is retried (the one retry), never skipped.
 */
export function createDeadLetterRecorder(options: DeadLetterRecorderOptions): Worker {
  const logger = options.logger.child({ module: 'dead-letter-recorder', topic: options.topic });
  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    logLevel: logLevel.ERROR,
    logger,
  });
  const consumer = kafka.consumer({ groupId: options.groupId, allowAutoTopicCreation: false });
  let running: Promise<void> | undefined;
  /** The worker's own failure report (createWorker): set once it starts. */
  let failWorker: ((error: unknown) => void) | undefined;
  // kafkajs gave up (an authorization error, say): the worker fails, as the usage consumer does,
  // instead of the console's list going quiet while /health says up; a lost coordinator runs again.
  const supervised = superviseConsumer(consumer, { logger, fail: (error) => failWorker?.(error), message: 'dead-letter recorder consumer crashed' });
  return createWorker('dead-letter-recorder', {
    // Resolves at once: the API this runs beside must not wait for Kafka to start, or fail with it.
    // Joining the group is retried in the background until it succeeds or the worker stops.
    async start(signal, fail) {
      failWorker = fail;
      running = retry(
        async () => {
          await consumer.connect();
          await consumer.subscribe({ topics: [options.topic], fromBeginning: true });
          await supervised.run({
            eachBatch: async ({ batch, heartbeat }) => {
              const records = batch.messages.map((message) => deadLetterRecordOf(batch.partition, message));
              await retry(() => options.log.record(records), {
                what: 'recording dead letters',
                logger,
                maxDelayMs: 5000,
                signal,
                abandonOnAbort: true,
                heartbeat: { everyMs: 3000, beat: heartbeat },
              });
            },
          }, signal);
          logger.info('recording dead letters');
        },
        { what: 'joining the dead-letter topic', logger, maxDelayMs: 10_000, signal },
      ).catch((error: unknown) => {
        if (!signal.aborted) logger.error({ err: error }, 'the dead-letter recorder stopped');
      });
    },
    async stop() {
      await running;
      // A run again still joining would fetch on after disconnect(): it ends first.
      await supervised.settled();
      await consumer.disconnect();
    },
  });
}
