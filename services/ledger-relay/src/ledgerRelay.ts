import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { EventStore, RecordedEvent, Subscription } from '@tally/event-store';
import { tryAcquireAdvisoryLease, type AdvisoryLease } from '@tally/postgres';
import { ledgerEventAvroSchema, topicValueSubject } from '@tally/schemas';
import { createKafka, kafkaConnectionConfig, type KafkaConnection } from '@tally/kafka';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { logLevel, Partitioners, type CompressionTypes, type Message, type Producer } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { isLedgerEvent, toLedgerEventRecord } from './ledgerEventRecord';
import { pinoLogCreator } from './pinoLogCreator';

export interface LedgerRelayOptions {
  readonly eventStore: EventStore;
  /** Holds the checkpoint (table subscription_checkpoints) and the lease. */
  readonly pool: Pool;
  /**
   * The checkpoint's row, and the name of the lease: of the relays sharing a checkpoint name, one
   * publishes and the others stand by to take over.
   */
  readonly checkpointName: string;
  /** `ssl` and `sasl` as kafkajs takes them, when the brokers want TLS or SASL (optional). */
  readonly kafka: KafkaConnection;
  /** Must exist: topics are provisioned (scripts/stack.sh), the broker does not auto-create them. */
  readonly topic: string;
  /** Confluent-compatible registry API, e.g. http://127.0.0.1:8081/apis/ccompat/v7. */
  readonly registryUrl: string;
  /** HTTP basic authentication to the registry, when it wants it. */
  readonly registryAuth?: { readonly username: string; readonly password: string };
  readonly logger: Logger;
  /** Codec of the batches published (kafkajs's CompressionTypes); default none. */
  readonly compression?: CompressionTypes;
  /** Events read from the store and published per Kafka request; default 500. */
  readonly batchSize?: number;
  /** How often lag() learns the head of the log while no events flow; default 5000. */
  readonly lagRefreshMs?: number;
  /** Backoff between attempts at an operation that failed (registry, broker, PostgreSQL). */
  readonly retry?: { readonly initialDelayMs: number; readonly maxDelayMs: number };
  /** How often a standing-by relay tries to take the lease over; default 2000. */
  readonly standbyPollMs?: number;
  /** How often the publishing relay checks the connection holding its lease; default 2000. */
  readonly leaseHeartbeatMs?: number;
  /**
   * How long a lease heartbeat may go unanswered before the relay counts the lease as lost and
   * stops publishing; default 5000. Bounds the time a partitioned relay keeps publishing beside
   * the one that took over.
   */
  readonly leaseTimeoutMs?: number;
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
   * Registers the schema, then either takes the lease, loads the checkpoint and starts publishing,
   * or, when another relay holds the lease, stands by to take over. Resolves once publishing or
   * standing by, retrying the registry and PostgreSQL until they answer; rejects only when the
   * registry refuses the schema (incompatible). Resolves early if stop() is called meanwhile.
   */
  start(): Promise<void>;
  /**
   * Stops publishing and gives the lease up; resolves after the batch in progress was
   * acknowledged or abandoned.
   */
  stop(): Promise<void>;
  /** Measured against the shared checkpoint, so a standing-by relay reports the publishing one's lag. */
  lag(): LedgerRelayLag;
  /** Whether this relay holds the lease and publishes (false while standing by). */
  isPublishing(): boolean;
}

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_LAG_REFRESH_MS = 5_000;
const DEFAULT_RETRY = { initialDelayMs: 200, maxDelayMs: 5_000 };
const DEFAULT_STANDBY_POLL_MS = 2_000;
const DEFAULT_LEASE_HEARTBEAT_MS = 2_000;
const DEFAULT_LEASE_TIMEOUT_MS = 5_000;
const KAFKAJS_RETRY = { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 };

/** Raised inside the relay to unwind a retry loop when it stops or loses its lease; never leaves the relay. */
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
 *
 * Relays sharing a checkpoint name (the main job scaled out with the relay role in every
 * process) take turns through a PostgreSQL advisory lease: one publishes, the others stand by and
 * take over within `standbyPollMs` of its stop or crash, from the checkpoint it left. Without
 * the lease each would publish the whole ledger. The lease is a session lock, so PostgreSQL frees
 * it when its holder dies; a holder whose lease connection fails stops publishing as soon as it
 * notices (within `leaseHeartbeatMs` plus `leaseTimeoutMs`), and until then two relays may publish the same events:
 * duplicates, which at-least-once delivery allows, never a gap, since each resumes from the
 * checkpoint that only acknowledgements move.
 */
export function createLedgerRelay(options: LedgerRelayOptions): LedgerRelay {
  const { eventStore, checkpointName, topic } = options;
  const logger = options.logger.child({ module: 'ledger-relay', topic, checkpointName });
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const lagRefreshMs = options.lagRefreshMs ?? DEFAULT_LAG_REFRESH_MS;
  const retry = options.retry ?? DEFAULT_RETRY;
  const standbyPollMs = options.standbyPollMs ?? DEFAULT_STANDBY_POLL_MS;
  const leaseHeartbeatMs = options.leaseHeartbeatMs ?? DEFAULT_LEASE_HEARTBEAT_MS;
  const leaseTimeoutMs = options.leaseTimeoutMs ?? DEFAULT_LEASE_TIMEOUT_MS;
  const checkpoints = createPostgresCheckpointStore(options.pool);
  const registry = new SchemaRegistry({
    host: options.registryUrl,
    clientId: options.kafka.clientId,
    ...(options.registryAuth !== undefined ? { auth: { ...options.registryAuth } } : {}),
  });
  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
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
  // Set while this relay holds the lease; the term's controller is aborted when the lease is lost.
  let lease: AdvisoryLease | undefined;
  let term: AbortController | undefined;
  let standingBy = false;
  let campaignTimer: NodeJS.Timeout | undefined;
  // Created once and replaced only after a failed send; `connected` tells whether connect() is due.
  let producer: Producer | undefined;
  let connected = false;
  let lagTimer: NodeJS.Timeout | undefined;

  // Lag bookkeeping: what Kafka has (checkpoint), what the store has (head), and since when the
  // oldest unpublished event waits (undefined: unknown or nothing waits).
  let checkpoint = 0n;
  let head = 0n;
  let waitingSince: Date | undefined;

  /**
   * Runs `operation` until it succeeds; gives up only when `signal` is aborted (the relay stops,
   * or the term it works for ended) or `isFatal` says so.
   */
  async function untilDone<T>(
    what: string,
    operation: () => Promise<T>,
    { signal = stopSignal.signal, isFatal = () => false }: { signal?: AbortSignal; isFatal?: (error: unknown) => boolean } = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      // The first attempt always runs, so a batch the broker acknowledged while stopping still
      // moves the checkpoint; retries do not.
      if (attempt > 1 && signal.aborted) throw new RelayStoppedError(what);
      try {
        return await operation();
      } catch (error) {
        if (signal.aborted || error instanceof RelayStoppedError) throw new RelayStoppedError(what);
        if (isFatal(error)) throw error;
        const delayMs = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(attempt - 1, 20));
        logger.warn({ err: error, attempt, delayMs }, `${what} failed; retrying`);
        await sleep(delayMs, signal);
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
      await current.send({ topic, acks: -1, compression: options.compression, messages });
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

  async function publish(events: readonly RecordedEvent[], schemaId: number, signal: AbortSignal): Promise<void> {
    const last = events[events.length - 1];
    if (last === undefined || signal.aborted) return;
    if (last.position > head) head = last.position;
    waitingSince ??= events[0]!.recordedAt;
    const ledgerEvents = events.filter(isLedgerEvent);
    try {
      if (ledgerEvents.length > 0) {
        await untilDone('publishing ledger events', async () => send(await toMessages(ledgerEvents, schemaId)), { signal });
      }
      // Only now, with the broker's acknowledgement of every event up to `last` in hand, may the
      // checkpoint pass them: moved earlier, a crash or a failed send would lose events for good.
      // A crash after the send but before this write publishes the batch again on restart, which
      // at-least-once delivery allows. Batches without ledger events move it too, so a restart
      // does not re-read them.
      await untilDone('saving the checkpoint', () => checkpoints.save(checkpointName, last.position), { signal });
    } catch (error) {
      // Stopping, or the lease is lost: the checkpoint stays where the broker's acknowledgements
      // are, and the next term (here or in another relay) resumes there. Returning (not throwing)
      // is safe because the subscription is being stopped and its in-memory position dies with
      // it; a throw would only log a spurious error.
      if (error instanceof RelayStoppedError) return;
      throw error;
    }
    checkpoint = last.position;
    waitingSince = undefined;
  }

  /** Learns the head of the log (and the age of the next event) while no batch brings news. */
  async function refreshLag(): Promise<void> {
    try {
      // A relay standing by learns the publishing relay's progress from the shared checkpoint.
      if (term === undefined) {
        const saved = await checkpoints.load(checkpointName);
        const position = await eventStore.headPosition();
        const [next] = position > saved ? await eventStore.readAll({ after: saved, maxCount: 1 }) : [];
        if (term !== undefined) return;
        checkpoint = saved;
        head = position > saved ? position : saved;
        waitingSince = next?.recordedAt;
        return;
      }
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

  /** One attempt at the lease: publishes when it is taken, else stands by and tries again later. */
  async function campaign(schemaId: number): Promise<void> {
    const taken = await tryAcquireAdvisoryLease({
      pool: options.pool,
      name: checkpointName,
      heartbeatMs: leaseHeartbeatMs,
      timeoutMs: leaseTimeoutMs,
    });
    if (stopping) {
      await taken?.release();
      return;
    }
    if (taken === undefined) {
      if (!standingBy) logger.info('another relay holds the lease of this checkpoint and publishes; standing by');
      standingBy = true;
      scheduleCampaign(schemaId);
      return;
    }
    standingBy = false;
    await lead(taken, schemaId);
  }

  function scheduleCampaign(schemaId: number): void {
    campaignTimer = setTimeout(() => {
      untilDone('taking the relay lease', () => campaign(schemaId)).catch((error: unknown) => {
        if (!(error instanceof RelayStoppedError)) logger.error({ err: error }, 'taking the relay lease failed');
      });
    }, standbyPollMs);
  }

  /** Publishes from the checkpoint for as long as the lease lasts. */
  async function lead(taken: AdvisoryLease, schemaId: number): Promise<void> {
    const current = new AbortController();
    const signal = AbortSignal.any([stopSignal.signal, current.signal]);
    lease = taken;
    term = current;
    void taken.lost.then((error) => abdicate(current, error, schemaId));
    try {
      const after = await untilDone('loading the checkpoint', () => checkpoints.load(checkpointName), { signal });
      // Known from the start, so lag() does not report "caught up" before the first batch.
      const storeHead = await untilDone('reading the head of the event store', () => eventStore.headPosition(), { signal });
      // Stopped, or the lease lost, while these were read: this term must not start publishing.
      if (signal.aborted) throw new RelayStoppedError('starting to publish');
      checkpoint = after;
      head = storeHead > after ? storeHead : after;
      waitingSince = undefined;
      subscription = eventStore.subscribeToAll({
        after,
        batchSize,
        onEvents: (events) => publish(events, schemaId, signal),
        // The store reports read failures here and retries them itself; publish never throws.
        onError: (error) => logger.debug({ err: error }, 'event store subscription reported an error'),
        onCaughtUp: (position) => {
          if (position > head) head = position;
        },
      });
      logger.info({ after: after.toString(), schemaId }, 'ledger relay publishing');
    } catch (error) {
      if (!(error instanceof RelayStoppedError)) await taken.release();
      throw error;
    }
  }

  /** The lease's connection failed: PostgreSQL may already have let another relay take over. */
  async function abdicate(ended: AbortController, error: Error, schemaId: number): Promise<void> {
    if (stopping || term !== ended) return;
    logger.warn({ err: error }, 'lost the relay lease; stopping publishing and standing by');
    ended.abort();
    term = undefined;
    lease = undefined;
    const stopped = subscription;
    subscription = undefined;
    await stopped?.stop();
    if (stopping) return;
    standingBy = true;
    scheduleCampaign(schemaId);
  }

  return {
    async start() {
      if (started) throw new Error('the ledger relay was already started');
      started = true;
      try {
        const schemaId = await untilDone('registering the ledger event schema', registerSchema, { isFatal: isRefusedByRegistry });
        lagTimer = setInterval(() => void refreshLag(), lagRefreshMs);
        lagTimer.unref();
        await untilDone('taking the relay lease', () => campaign(schemaId));
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
      clearTimeout(campaignTimer);
      // Called before any await, so the subscription delivers no further batch.
      await subscription?.stop();
      // Only now, with no batch in flight, may another relay take over from the checkpoint.
      await lease?.release();
      lease = undefined;
      term = undefined;
      await producer?.disconnect().catch((error: unknown) => logger.warn({ err: error }, 'producer disconnect failed'));
      producer = undefined;
      connected = false;
      logger.info({ checkpoint: checkpoint.toString() }, 'ledger relay stopped');
    },

    isPublishing() {
      return term !== undefined;
    },

    lag() {
      const behind = head > checkpoint ? Number(head - checkpoint) : 0;
      const seconds = behind > 0 && waitingSince !== undefined ? Math.max(0, (Date.now() - waitingSince.getTime()) / 1000) : 0;
      return { events: behind, seconds };
    },
  };
}

/**
 * Two first registrations of one subject at once (two relays starting, or a relay and a
 * consumer) make the client set the subject's compatibility twice, and Apicurio answers the
 * second with 409 "rule already exists". That is a lost race, not a refusal: retrying finds
 * the rule in place and registers.
 */
const COMPATIBILITY_RULE_RACE = /rule named 'COMPATIBILITY' already exists/i;

/** The registry answered, and no: an incompatible (409) or invalid (422) schema will not change by waiting. */
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
