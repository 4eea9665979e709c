import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { EventStore, RecordedEvent } from '@tally/event-store';
import type { MetricsRegistry } from '@tally/metrics';
import { ledgerEventAvroSchema, topicValueSubject } from '@tally/schemas';
import { createKafka, kafkaConnectionConfig, registryUrlProblem, sendInParts, topicSendBudget, type KafkaConnection } from '@tally/kafka';
import {
  createCheckpointedProcessor,
  createPostgresCheckpointStore,
  createWorker,
  retry,
  type CheckpointedProcessorOptions,
  type ProcessorLag,
  type Worker,
} from '@tally/runtime';
import { logLevel, Partitioners, type CompressionTypes, type Message, type Producer } from 'kafkajs';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { isLedgerEvent, toLedgerEventRecord } from './ledgerEventRecord';
import { LedgerRelayOptionsError, LedgerSchemaRefusedError, UnpublishableLedgerEventError } from './ledgerRelayErrors';
import { registerSchema } from './registerSchema';

/** batchSize, lagRefreshMs and retry (registry, broker, PostgreSQL) as the processor takes them. */
export interface LedgerRelayOptions extends Pick<CheckpointedProcessorOptions<RecordedEvent>, 'batchSize' | 'lagRefreshMs' | 'retry'> {
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
  /**
   * Confluent-compatible registry API, e.g. http://127.0.0.1:8081/apis/ccompat/v7: http(s), its
   * credentials in registryAuth, not in the URL (else LedgerRelayOptionsError).
   */
  readonly registryUrl: string;
  /** HTTP basic authentication to the registry, when it wants it. */
  readonly registryAuth?: { readonly username: string; readonly password: string };
  readonly logger: Logger;
  /** Codec of the batches published (kafkajs's CompressionTypes); default none. */
  readonly compression?: CompressionTypes;
  /**
   * The lease's standbyPollMs, heartbeatMs and timeoutMs (ProcessorLease): a partitioned relay
   * notices within heartbeat + timeout, and stops publishing once the batch it is sending is done.
   */
  readonly standbyPollMs?: number;
  readonly leaseHeartbeatMs?: number;
  readonly leaseTimeoutMs?: number;
  /** Where the lag and publishing gauges go (tally_relay_*); none without it. */
  readonly metrics?: MetricsRegistry;
}

/**
 * A worker: start() either takes the lease, loads the checkpoint and starts publishing, or, when
 * another relay holds the lease, stands by to take over. It resolves once publishing or standing
 * by, retrying PostgreSQL until it answers, and resolves early if stop() is called meanwhile. The
 * schema is registered before the first send, in the background: a registry that is down holds
 * back the relay alone (its lag grows), never start(). The relay fails (Worker.onFailure) on any
 * TallyError that is not retriable: the registry refuses the schema or the relay's credentials
 * (LedgerSchemaRefusedError), an event can never be published (UnpublishableLedgerEventError),
 * the store cannot be read (EventStoreStreamDeletedError, StreamRevisionMismatchError). stop()
 * stops publishing (and a registration still retrying) and gives the lease up; it resolves after
 * the batch being sent was acknowledged, every part of it, and its checkpoint saved, a failed save
 * retried for up to 2 s (the processor's SAVE_AFTER_STOP_MS). A part that fails meanwhile, or a
 * save failing throughout, leaves the checkpoint before the batch, for the standby to publish
 * again.
 */
export interface LedgerRelay extends Worker {
  /** Measured against the shared checkpoint, so a standing-by relay reports the publishing one's lag. */
  lag(): ProcessorLag;
  /** Whether this relay holds the lease and publishes (false while standing by). */
  isPublishing(): boolean;
}

const KAFKAJS_RETRY = { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 };

/**
 * Publishes every ledger event of the event store to a Kafka topic, in global position order:
 * key = customer id (so a customer's events, and with them each balance's, stay on one partition
 * in order), value = Confluent-framed Avro (`avro/ledger-event.avsc`, subject `<topic>-value`),
 * headers `tally.event-type` and `tally.event-id`.
 *
 * A checkpointed processor (@tally/runtime) with a lease: delivery is at least once, since a
 * batch is sent with acks=-1 by an idempotent producer and the checkpoint moves only after the
 * broker acknowledged it. A failure (broker down, PostgreSQL down) is retried with backoff for as
 * long as it lasts; nothing is ever skipped. A batch whose acknowledgement was lost, or a restart
 * between acknowledgement and checkpoint, publishes some events again; consumers deduplicate by
 * event id.
 *
 * Relays sharing a checkpoint name (the main job scaled out with the relay role in every
 * process) take turns through the processor's PostgreSQL advisory lease: one publishes, the
 * others stand by and take over within `standbyPollMs` of its stop or crash, from the checkpoint
 * it left. Without the lease each would publish the whole ledger. Until a holder whose lease
 * connection failed notices (within `leaseHeartbeatMs` plus `leaseTimeoutMs`) and has finished
 * the batch it is sending (its remaining parts, then its checkpoint's save), two relays may
 * publish the same events: duplicates, which at-least-once delivery allows, never a gap.
 */
export function createLedgerRelay(options: LedgerRelayOptions): LedgerRelay {
  const { eventStore, checkpointName, topic } = options;
  // Refused now: taken, the registry would be unreachable for ever, the relay's lag growing at warn.
  const registryProblem = registryUrlProblem(options.registryUrl, 'registryAuth');
  if (registryProblem !== undefined) throw new LedgerRelayOptionsError(`registryUrl: ${registryProblem}`);
  const logger = options.logger.child({ module: 'ledger-relay', topic, checkpointName });
  const registry = new SchemaRegistry({
    host: options.registryUrl,
    clientId: options.kafka.clientId,
    ...(options.registryAuth !== undefined ? { auth: { ...options.registryAuth } } : {}),
  });
  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    logLevel: logLevel.WARN,
    logger,
    // Short retry cycles inside kafkajs (connecting, metadata): while the broker is down the relay
    // waits in its own backoff, which stop() can interrupt, rather than in one kafkajs cannot.
    retry: KAFKAJS_RETRY,
  });

  let schemaId: number | undefined;
  // What one send may hold, learned from the topic once, halved when refused.
  const sendBudget = topicSendBudget({ kafka, topic, logger, retry: KAFKAJS_RETRY });
  // Created once and replaced only after a failed send; `connected` tells whether connect() is due.
  let producer: Producer | undefined;
  let connected = false;

  async function registerLedgerSchema(): Promise<number> {
    // Topic-name strategy: the subject is `<topic>-value`, which is where Confluent-compatible
    // consumers and tools look for it. Registering an identical schema again returns its id.
    // Under the subject's rule as the operator set it (registerSchema).
    return registerSchema(registry, topicValueSubject(topic), JSON.stringify(ledgerEventAvroSchema));
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

  async function send(messages: Message[]): Promise<void> {
    const current = (producer ??= createProducer());
    try {
      if (!connected) {
        await current.connect();
        connected = true;
      }
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

  /**
   * Sends the batch's messages in order, in parts the topic takes (sendInParts). Each part waits
   * for its acknowledgement, so the checkpoint, moved after the handler, passes only acknowledged
   * events; a failure part way sends the batch again from its first part (duplicates, which
   * at-least-once allows). A record the topic refuses alone can never go.
   *
   * A stop is heeded before the first part only: a batch abandoned between parts would leave its
   * acknowledged parts past the checkpoint, for the standby to publish again. A started batch
   * finishes (acknowledged parts take milliseconds each), its checkpoint is saved (retried for a
   * moment after the stop: the processor), and then the lease is given up; a part that fails
   * meanwhile ends it, as the stop retries no send. A lost lease aborts the same signal: the
   * deposed holder finishes its batch too.
   */
  async function publish(messages: readonly { readonly recorded: RecordedEvent; readonly message: Message }[], signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    await sendInParts({
      messages: messages.map(({ message }) => message),
      budget: sendBudget,
      send,
      refusedAlone: (index, error) => {
        throw new UnpublishableLedgerEventError(messages[index]!.recorded, 'taken by the topic', error);
      },
      logger,
    });
  }

  /** Encoding a stored event cannot succeed later if it fails now: its failure names the event. */
  async function toMessages(events: readonly RecordedEvent[], id: number): Promise<Array<{ recorded: RecordedEvent; message: Message }>> {
    // Fetched (or found in the client's cache) first: a registry that is away is a transient failure.
    await registry.getSchema(id);
    return Promise.all(
      events.map(async (recorded) => {
        try {
          const value = toLedgerEventRecord(recorded);
          const message = {
            key: value.customerId,
            value: await registry.encode(id, value),
            headers: { 'tally.event-type': value.type, 'tally.event-id': value.eventId },
          };
          return { recorded, message };
        } catch (error) {
          throw new UnpublishableLedgerEventError(recorded, 'encoded', error);
        }
      }),
    );
  }

  const processor = createCheckpointedProcessor({
    name: checkpointName,
    role: 'relay',
    eventStore,
    checkpoints: createPostgresCheckpointStore(options.pool),
    logger,
    what: 'publishing ledger events',
    retry: options.retry,
    batchSize: options.batchSize,
    lagRefreshMs: options.lagRefreshMs,
    lease: { pool: options.pool, standbyPollMs: options.standbyPollMs, heartbeatMs: options.leaseHeartbeatMs, timeoutMs: options.leaseTimeoutMs },
    metrics: options.metrics && {
      registry: options.metrics,
      lagEvents: { name: 'tally_relay_lag_events', help: 'Event store positions not yet published to the ledger topic' },
      lagSeconds: { name: 'tally_relay_lag_seconds', help: 'Age of the oldest ledger event not yet published' },
      leading: { name: 'tally_relay_publishing', help: '1 while this process holds the relay lease and publishes, 0 while it stands by' },
    },
    // No isTransient: the processor's default fails the relay on whatever Tally names as not
    // retriable (an event that can never be published, a registry that refuses the schema or the
    // relay's credentials, a store that cannot be read) and retries anything else.
    // Batches without ledger events still move the checkpoint, so a restart does not re-read them.
    handle: async (events, signal) => {
      const ledgerEvents = events.filter(isLedgerEvent);
      if (ledgerEvents.length === 0) return;
      schemaId ??= await registerUntilAnswered(signal);
      await publish(await toMessages(ledgerEvents, schemaId), signal);
    },
  });

  /**
   * Registers the schema before the first send, in the processor's handler rather than in
   * start(): a registry that is down at boot then holds back no other role of the process (the
   * API, its /health), and the relay's lag shows the outage, as for a broker that is down.
   */
  async function registerUntilAnswered(signal: AbortSignal): Promise<number> {
    try {
      return await retry(registerLedgerSchema, {
        ...options.retry,
        what: 'registering the ledger event schema',
        logger,
        signal,
        isTransient: (error) => !isRefusedByRegistry(error),
      });
    } catch (error) {
      if (!signal.aborted && isRefusedByRegistry(error)) throw new LedgerSchemaRefusedError(topicValueSubject(topic), statusOf(error), error);
      throw error;
    }
  }

  const worker = createWorker('relay', {
    async start(_signal, fail) {
      processor.onFailure(fail);
      await processor.start();
    },
    async stop() {
      // Ends a registration still retrying too: it runs in the handler, which stop() aborts.
      await processor.stop();
      await producer?.disconnect().catch((error: unknown) => logger.warn({ err: error }, 'producer disconnect failed'));
      producer = undefined;
      connected = false;
    },
  });

  return Object.assign(worker, { lag: processor.lag, isPublishing: processor.isLeading });
}

/**
 * Two first registrations of one subject at once (two relays starting, or a relay and a
 * consumer) make the client set the subject's compatibility twice, and Apicurio answers the
 * second with 409 "rule already exists". That is a lost race, not a refusal: retrying finds
 * the rule in place and registers.
 */
const COMPATIBILITY_RULE_RACE = /rule named 'COMPATIBILITY' already exists/i;

function statusOf(error: unknown): number | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The registry answered, and no: an incompatible (409) or invalid (422) schema, or credentials it
 * refuses (401, 403), will not change by waiting. An operator must act, so the relay fails
 * loudly rather than retry at warn.
 */
export function isRefusedByRegistry(error: unknown): boolean {
  const status = statusOf(error);
  if (status === 401 || status === 403) return true;
  if (status !== 409 && status !== 422) return false;
  return !COMPATIBILITY_RULE_RACE.test(error instanceof Error ? error.message : String(error));
}
