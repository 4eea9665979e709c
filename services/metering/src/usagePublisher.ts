import { TallyError, type UsageEvent } from '@tally/domain';
import { createKafka, kafkaConnectionConfig, type KafkaConnection } from '@tally/kafka';
import { logLevel, Partitioners, type CompressionTypes, type Producer } from 'kafkajs';
import type { Logger } from 'pino';

/** One usage event to publish: the validated event (for its key) and the bytes the consumer will read. */
export interface UsageToPublish {
  readonly usage: UsageEvent;
  readonly value: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface UsagePublisher {
  /** Resolves once every in-sync replica has the events; rejects with UsagePublishError. */
  publish(events: readonly UsageToPublish[]): Promise<void>;
  stop(): Promise<void>;
}

export interface UsagePublisherOptions {
  readonly kafka: KafkaConnection;
  readonly topic: string;
  readonly compression?: CompressionTypes;
  readonly logger: Logger;
  /** How long a send may take, Kafka's retries included, before it fails; default 10 000. */
  readonly timeoutMs?: number;
}

/** Bounded, so a request fails (503) instead of hanging while Kafka is away. */
const KAFKAJS_RETRY = { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 };

/** Kafka did not take the events in time: nothing is lost, the caller retries (event ids dedupe). */
export class UsagePublishError extends TallyError {
  readonly code = 'usage_not_published';
  readonly retriable = true;
}

/**
 * Publishes usage events to the usage topic for producers that do not run a Kafka client (the
 * HTTP route): the consumer stays the one metering path. Keyed by customer with Java's murmur2
 * partitioner, so a customer's events share a partition with those of every other producer and
 * stay in order; acks from all in-sync replicas and the idempotent producer, so an acknowledged
 * event is durable and kafkajs's own retries add no duplicate. A caller that retries after a
 * failure may publish an event twice: the consumer charges a usage id once.
 */
export function createUsagePublisher(options: UsagePublisherOptions): UsagePublisher {
  const logger = options.logger.child({ module: 'usage-publisher', topic: options.topic });
  const timeoutMs = options.timeoutMs ?? 10_000;
  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    logLevel: logLevel.ERROR,
    logger,
    retry: KAFKAJS_RETRY,
  });
  let producer: Producer | undefined;
  let connecting: Promise<Producer> | undefined;
  let stopped = false;

  function connected(): Promise<Producer> {
    connecting ??= (async () => {
      const created = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: KAFKAJS_RETRY,
      });
      await created.connect();
      if (stopped) {
        // Stopped while connecting: stop() did not wait for a broker that may be away.
        await created.disconnect();
        throw new Error('the usage publisher is stopped');
      }
      producer = created;
      return created;
    })().catch((error: unknown) => {
      connecting = undefined;
      throw error;
    });
    return connecting;
  }

  return {
    async publish(events) {
      if (events.length === 0) return;
      if (stopped) throw new UsagePublishError('the usage publisher is stopped');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Kafka did not acknowledge within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const current = await Promise.race([connected(), timeout]);
        await Promise.race([
          current.send({
            topic: options.topic,
            acks: -1,
            compression: options.compression,
            messages: events.map(({ usage, value, headers }) => ({ key: usage.customerId, value, headers: { ...headers } })),
          }),
          timeout,
        ]);
      } catch (error) {
        logger.warn({ err: error, events: events.length }, 'usage events not published');
        // The client reads the message; the brokers' addresses in the cause are for the log (above).
        throw new UsagePublishError('usage events were not published to Kafka; retry the request', { cause: error });
      } finally {
        clearTimeout(timer);
      }
    },
    async stop() {
      stopped = true;
      await producer?.disconnect();
    },
  };
}
