import { TallyError, ValidationError, type UsageEvent } from '@tally/domain';
import { createKafka, kafkaConnectionConfig, sendInParts, topicSendBudget, type KafkaConnection } from '@tally/kafka';
import { withDeadline } from '@tally/runtime';
import { logLevel, Partitioners, type CompressionTypes, type Producer } from 'kafkajs';
import type { Logger } from 'pino';

/** One usage event to publish: the validated event (for its key) and the bytes the consumer will read. */
export interface UsageToPublish {
  readonly usage: UsageEvent;
  readonly value: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The events the topic refused, by their index in the events published; every other one is on the topic. */
export interface UsagePublished {
  readonly refused: readonly { readonly index: number; readonly error: UsageEventTooLargeError }[];
}

export interface UsagePublisher {
  /**
   * Resolves once every in-sync replica has the events, less those the topic refused as larger
   * than it takes; rejects with UsagePublishError, when the events before the failure may be on
   * the topic.
   */
  publish(events: readonly UsageToPublish[]): Promise<UsagePublished>;
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

/** One event larger than the usage topic's max.message.bytes: no retry gets it there. */
export class UsageEventTooLargeError extends ValidationError {
  override readonly code = 'usage_event_too_large';
}

/**
 * Publishes usage events to the usage topic for producers that do not run a Kafka client (the
 * HTTP route): the consumer stays the one metering path. Keyed by customer with Java's murmur2
 * partitioner, so a customer's events share a partition with those of every other producer and
 * stay in order; in parts the topic takes (sendInParts, each acknowledged before the next, so a
customer's events stay in order across them: a request may be five times the default
max.message.bytes); acks from all in-sync replicas and the idempotent producer, so an acknowledged
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
  const sendBudget = topicSendBudget({ kafka, topic: options.topic, logger, retry: KAFKAJS_RETRY });
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
      if (events.length === 0) return { refused: [] };
      if (stopped) throw new UsagePublishError('the usage publisher is stopped');
      let timedOut = false;
      const late = (): Error => {
        timedOut = true;
        return new Error(`Kafka did not acknowledge within ${timeoutMs} ms`);
      };
      const refused: { index: number; error: UsageEventTooLargeError }[] = [];
      let acknowledged = 0;
      const sending = async (): Promise<void> => {
        const current = await connected();
        await sendInParts({
          messages: events.map(({ usage, value, headers }) => ({ key: usage.customerId, value, headers: { ...headers } })),
          budget: sendBudget,
          send: async (part) => {
            // Past the deadline the request has failed: no later part goes out behind its answer.
            if (timedOut) throw new Error(`Kafka did not acknowledge within ${timeoutMs} ms`);
            await current.send({ topic: options.topic, acks: -1, compression: options.compression, messages: part });
            acknowledged += part.length;
          },
          refusedAlone: (index, error) => {
            logger.warn({ err: error, usageId: events[index]!.usage.id, bytes: events[index]!.value.length }, 'usage event larger than the topic takes; refused');
            refused.push({ index, error: new UsageEventTooLargeError(`the event (${events[index]!.value.length} bytes) is larger than the usage topic takes (its max.message.bytes)`, { cause: error }) });
          },
          logger,
        });
      };
      try {
        await withDeadline(sending(), timeoutMs, late);
        return { refused };
      } catch (error) {
        logger.warn({ err: error, events: events.length, acknowledged }, 'usage events not published');
        // The client reads the message; the brokers' addresses in the cause are for the log (above).
        // Parts before the failure are on the topic: said, and harmless to send again (usage ids).
        const partly = acknowledged > 0 ? ` (${acknowledged} of ${events.length} events were published before the failure; their ids make sending them again safe)` : '';
        throw new UsagePublishError(`usage events were not published to Kafka${partly}; retry the request`, { cause: error });
      }
    },
    async stop() {
      stopped = true;
      await producer?.disconnect();
    },
  };
}
