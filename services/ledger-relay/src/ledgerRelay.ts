import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { EventStore, RecordedEvent, Subscription } from '@tally/event-store';
import { ledgerEventAvroSchema, topicValueSubject } from '@tally/schemas';
import { Kafka, logLevel, Partitioners, type Message, type Producer } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { createPostgresCheckpointStore } from './checkpointStore';
import { isLedgerEvent, toLedgerEventRecord } from './ledgerEventRecord';
import { pinoLogCreator } from './pinoLogCreator';

export interface LedgerRelayOptions {
  readonly eventStore: EventStore;
  /** Holds the checkpoint (table subscription_checkpoints). */
  readonly pool: Pool;
  /** The checkpoint's row: one per relay, so two relays of one topic must not share it. */
  readonly checkpointName: string;
  readonly kafka: { readonly brokers: readonly string[]; readonly clientId: string };
  /** Must exist: topics are provisioned (scripts/stack.sh), the broker does not auto-create them. */
  readonly topic: string;
  /** Confluent-compatible registry API, e.g. http://127.0.0.1:8081/apis/ccompat/v7. */
  readonly registryUrl: string;
  readonly logger: Logger;
  /** Events read from the store and published per Kafka request; default 500. */
  readonly batchSize?: number;
  /** How often lag() learns the head of the log while no events flow; default 5000. */
  readonly lagRefreshMs?: number;
  /** Backoff between attempts at an operation that failed (registry, broker, PostgreSQL). */
  readonly retry?: { readonly initialDelayMs: number; readonly maxDelayMs: number };
}

export interface LedgerRelayLag {
  /**
   * Global positions between the head of the event store and the relay's checkpoint: an upper
   * bound of the ledger events not yet on the topic (positions have gaps and count every stream).
   */
  readonly events: number;
  /** Age of the oldest event not yet on the topic, in seconds; 0 when caught up. */
  readonly seconds: number;
}

export interface LedgerRelay {
  /**
   * Registers the schema, loads the checkpoint and starts publishing. Resolves once running,
   * retrying the registry and PostgreSQL until they answer; rejects only when the registry refuses
   * the schema (incompatible). Resolves early if stop() is called meanwhile.
   */
  start(): Promise<void>;
  /** Stops publishing; resolves after the batch in progress was acknowledged or abandoned. */
  stop(): Promise<void>;
  lag(): LedgerRelayLag;
}

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_LAG_REFRESH_MS = 5_000;
const DEFAULT_RETRY = { initialDelayMs: 200, maxDelayMs: 5_000 };
const KAFKAJS_RETRY = { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 };

/** Raised inside the relay to unwind a retry loop when stop() is called; never leaves the relay. */
class RelayStoppedError extends Error {}

/**
 * Publishes every ledger event of the event store to a Kafka topic, in global position order:
 * key = customer id (so a customer's events, and with them each balance's, stay on one partition
 * in order), value = Confluent-framed Avro (`avro/ledger-event.avsc`, subject `<topic>-value`),
 * headers `tally.event-type` and `tally.event-id`.
 *
 * Delivery is at least once: a batch is sent with acks=-1 by an idempotent producer, and the
 * checkpoint moves only after the broker acknowledged it. A failure (broker down, PostgreSQL
 * down) is retried with backoff for as long as it lasts; nothing is ever skipped. A batch whose
 * acknowledgement was lost, or a restart between acknowledgement and checkpoint, publishes some
 * events again; consumers deduplicate by event id.
 */
export function createLedgerRelay(options: LedgerRelayOptions): LedgerRelay {
  const { eventStore, checkpointName, topic } = options;
  const logger = options.logger.child({ module: 'ledger-relay', topic, checkpointName });
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const lagRefreshMs = options.lagRefreshMs ?? DEFAULT_LAG_REFRESH_MS;
  const retry = options.retry ?? DEFAULT_RETRY;
  const checkpoints = createPostgresCheckpointStore(options.pool);
  const registry = new SchemaRegistry({ host: options.registryUrl, clientId: options.kafka.clientId });
  const kafka = new Kafka({
    clientId: options.kafka.clientId,
    brokers: [...options.kafka.brokers],
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator(logger),
    // Short retry cycles inside kafkajs (connecting, metadata): while the broker is down the relay
    // waits in its own backoff, which stop() can interrupt, rather than in one kafkajs cannot.
    retry: KAFKAJS_RETRY,
  });

  let started = false;
  let stopping = false;
  // Ends every backoff sleep at once when stop() is called.
  const stopSignal = new AbortController();
  let subscription: Subscription | undefined;
  // Created once and replaced only after a failed send; `connected` tells whether connect() is due.
  let producer: Producer | undefined;
  let connected = false;
  let lagTimer: NodeJS.Timeout | undefined;

  // Lag bookkeeping: what Kafka has (checkpoint), what the store has (head), and since when the
  // oldest unpublished event waits (undefined: unknown or nothing waits).
  let checkpoint = 0n;
  let head = 0n;
  let waitingSince: Date | undefined;

  /** Runs `operation` until it succeeds; gives up only when the relay stops or `isFatal` says so. */
  async function untilDone<T>(what: string, operation: () => Promise<T>, isFatal: (error: unknown) => boolean = () => false): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await operation();
      } catch (error) {
        if (stopping || error instanceof RelayStoppedError) throw new RelayStoppedError(what);
        if (isFatal(error)) throw error;
        const delayMs = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(attempt - 1, 20));
        logger.warn({ err: error, attempt, delayMs }, `${what} failed; retrying`);
        await sleep(delayMs, stopSignal.signal);
      }
    }
  }

  async function registerSchema(): Promise<number> {
    // Topic-name strategy: the subject is `<topic>-value`, which is where Confluent-compatible
    // consumers and tools look for it. Registering an identical schema again returns its id.
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(ledgerEventAvroSchema) },
      { subject: topicValueSubject(topic) },
    );
    return id;
  }

  function createProducer(): Producer {
    return kafka.producer({
      // Idempotence makes the broker drop the duplicates of kafkajs's own retries, and together
      // with one request in flight keeps a partition's messages in send order across retries.
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Java's murmur2 partitioner: a customer's key lands on the same partition as it would
      // from any other Kafka client.
      createPartitioner: Partitioners.DefaultPartitioner,
      // Bounded, unlike kafkajs's default for idempotent producers (unbounded): a send must fail
      // within seconds so that stop() is not held up by a broker that is down (kafkajs warns that
      // this weakens exactly-once; the relay promises at least once). The relay then retries the
      // batch with a fresh producer, which can only add duplicates.
      retry: { ...KAFKAJS_RETRY, retries: 3 },
    });
  }

  async function connectedProducer(): Promise<Producer> {
    if (stopping) throw new RelayStoppedError('connect');
    producer ??= createProducer();
    if (!connected) {
      await producer.connect();
      connected = true;
    }
    return producer;
  }

  async function send(messages: Message[]): Promise<void> {
    const current = await connectedProducer();
    try {
      await current.send({ topic, acks: -1, messages });
    } catch (error) {
      // A producer that failed after its retries may hold a stale sequence or producer id for
      // the partitions (e.g. across a broker restart); a fresh one starts clean.
      producer = undefined;
      connected = false;
      await current.disconnect().catch(() => undefined);
      throw error;
    }
  }

  async function toMessages(events: readonly RecordedEvent[], schemaId: number): Promise<Message[]> {
    return Promise.all(
      events.map(async (recorded) => {
        const value = toLedgerEventRecord(recorded);
        return {
          key: value.customerId,
          value: await registry.encode(schemaId, value),
          headers: { 'tally.event-type': value.type, 'tally.event-id': value.eventId },
        };
      }),
    );
  }

  async function publish(events: readonly RecordedEvent[], schemaId: number): Promise<void> {
    const last = events[events.length - 1];
    if (last === undefined || stopping) return;
    if (last.position > head) head = last.position;
    waitingSince ??= events[0]!.recordedAt;
    const ledgerEvents = events.filter(isLedgerEvent);
    try {
      if (ledgerEvents.length > 0) {
        await untilDone('publishing ledger events', async () => send(await toMessages(ledgerEvents, schemaId)));
      }
      // Only now, with the broker's acknowledgement of every event up to `last` in hand, may the
      // checkpoint pass them: moved earlier, a crash or a failed send would lose events for good.
      // A crash after the send but before this write publishes the batch again on restart, which
      // at-least-once delivery allows. Batches without ledger events move it too, so a restart
      // does not re-read them.
      await untilDone('saving the checkpoint', () => checkpoints.save(checkpointName, last.position));
    } catch (error) {
      // Stopping: the checkpoint stays where the broker's acknowledgements are, and the next
      // start resumes there. Returning (not throwing) is safe because the subscription is being
      // stopped and its in-memory position dies with it; a throw would only log a spurious error.
      if (error instanceof RelayStoppedError) return;
      throw error;
    }
    checkpoint = last.position;
    waitingSince = undefined;
  }

  /** Learns the head of the log (and the age of the next event) while no batch brings news. */
  async function refreshLag(): Promise<void> {
    try {
      const known = checkpoint;
      const position = await eventStore.headPosition();
      if (position > head) head = position;
      if (head > known && waitingSince === undefined) {
        const [next] = await eventStore.readAll({ after: known, maxCount: 1 });
        // A batch may have been acknowledged meanwhile; then `next` is no longer waiting.
        if (next !== undefined && checkpoint === known && waitingSince === undefined) waitingSince = next.recordedAt;
      }
    } catch (error) {
      logger.debug({ err: error }, 'could not refresh the lag; keeping the last known');
    }
  }

  return {
    async start() {
      if (started) throw new Error('the ledger relay was already started');
      started = true;
      try {
        const schemaId = await untilDone('registering the ledger event schema', registerSchema, isRefusedByRegistry);
        const after = await untilDone('loading the checkpoint', () => checkpoints.load(checkpointName));
        // Known from the start, so lag() does not report "caught up" before the first batch.
        const storeHead = await untilDone('reading the head of the event store', () => eventStore.headPosition());
        if (stopping) return;
        checkpoint = after;
        head = storeHead > after ? storeHead : after;
        subscription = eventStore.subscribeToAll({
          after,
          batchSize,
          onEvents: (events) => publish(events, schemaId),
          // The store reports read failures here and retries them itself; publish never throws.
          onError: (error) => logger.debug({ err: error }, 'event store subscription reported an error'),
          onCaughtUp: (position) => {
            if (position > head) head = position;
          },
        });
        lagTimer = setInterval(() => void refreshLag(), lagRefreshMs);
        lagTimer.unref();
        logger.info({ after: after.toString(), schemaId }, 'ledger relay started');
      } catch (error) {
        if (error instanceof RelayStoppedError) return;
        throw error;
      }
    },

    async stop() {
      if (stopping) return;
      stopping = true;
      stopSignal.abort();
      clearInterval(lagTimer);
      // Called before any await, so the subscription delivers no further batch.
      await subscription?.stop();
      await producer?.disconnect().catch((error: unknown) => logger.warn({ err: error }, 'producer disconnect failed'));
      producer = undefined;
      connected = false;
      logger.info({ checkpoint: checkpoint.toString() }, 'ledger relay stopped');
    },

    lag() {
      const behind = head > checkpoint ? Number(head - checkpoint) : 0;
      const seconds = behind > 0 && waitingSince !== undefined ? Math.max(0, (Date.now() - waitingSince.getTime()) / 1000) : 0;
      return { events: behind, seconds };
    },
  };
}

/** The registry answered, and no: an incompatible (409) or invalid (422) schema will not change by waiting. */
/**
 * Two first registrations of one subject at once (two relays starting, or a relay and a
 * consumer) make the client set the subject's compatibility twice, and Apicurio answers the
 * second with 409 "rule already exists". That is a lost race, not a refusal: retrying finds
 * the rule in place and registers.
 */
const COMPATIBILITY_RULE_RACE = /rule named 'COMPATIBILITY' already exists/i;

export function isRefusedByRegistry(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  if (status !== 409 && status !== 422) return false;
  return !COMPATIBILITY_RULE_RACE.test(error instanceof Error ? error.message : String(error));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
