import { registryUrlProblem, type KafkaConnection } from '@tally/kafka';
import type { CatalogCache } from '@tally/catalog';
import type { EventStore } from '@tally/event-store';
import type { BalanceRegistry, UsageBalanceWrites } from '@tally/ledger';
import type { CompressionTypes } from 'kafkajs';
import type { Logger } from 'pino';
import type { PartitionGroupLag } from './consumerGroupLag';

/** What one finished batch (a chunk of a Kafka fetch) looked like, for a metrics exporter. */
export interface UsageBatchMetrics {
  readonly topic: string;
  readonly partition: number;
  readonly messages: number;
  readonly durationMs: number;
  /** Messages behind this batch in the partition (high watermark − next offset) when it was fetched. */
  readonly lag: number;
  /** The Kafka timestamp (epoch ms) of the batch's last metered message: the partition's balances reflect its usage up to that instant. */
  readonly lastTimestampMs: number;
}

export interface UsageConsumerMetrics {
  /** Called after each batch is committed. Must not throw or block: it runs inside the consumer loop. */
  batchProcessed(batch: UsageBatchMetrics): void;
  /**
   * Called each time this member joins the group, with the usage topic's partitions it now holds
   * (none, when the group has more members than partitions). Figures kept for a partition not in
   * the list are another member's from now on. Must not throw or block.
   */
  partitionsAssigned(assignment: { readonly topic: string; readonly partitions: readonly number[] }): void;
  /**
   * Every `groupLagIntervalMs`, the group's lag on each partition of the topic as the broker holds
   * it (consumerGroupLag.ts): the same figures from every member. Must not throw or block.
   */
  groupLagRead(reading: { readonly topic: string; readonly partitions: readonly PartitionGroupLag[] }): void;
  /**
   * Called each time a partition is held out of the fetch (paused until a backoff ends, then tried
   * again): at usage waiting for a balance's opening, or at a dead letter the topic refused. Each
   * hold is followed by one partitionResumed, when its backoff ends or the consumer stops.
   * Optional; must not throw or block.
   */
  partitionHeld?(hold: { readonly topic: string; readonly partition: number; readonly reason: PartitionHoldReason }): void;
  partitionResumed?(resumed: { readonly topic: string; readonly partition: number }): void;
}

/** Why a partition is held out of the fetch (see partitionHeld). */
export type PartitionHoldReason = 'balance_not_opened' | 'dead_letter_refused';

export interface UsageConsumerOptions {
  /** `ssl` and `sasl` as kafkajs takes them, when the brokers want TLS or SASL (optional). */
  readonly kafka: KafkaConnection;
  /** The consumer group; `tally-metering` in production. Processes in one group share the partitions. */
  readonly groupId: string;
  /** The usage topic, `usage-events`; its message key is the customer id. */
  readonly topic: string;
  /** Where bad messages go, `usage-events.dlq`. It must exist: the consumer does not create topics. */
  readonly dlqTopic: string;
  /** Confluent-compatible schema registry API root. */
  readonly registryUrl: string;
  /** HTTP basic authentication to the registry, when it wants it. */
  readonly registryAuth?: { readonly username: string; readonly password: string };
  readonly eventStore: EventStore;
  /**
   * Which balances each customer has (a BalanceRegistryCache in the main job: one query a batch at
   * most), and when an unopened one was registered (its wait for the opening runs from then).
   */
  readonly balanceRegistry: Pick<BalanceRegistry, 'balancesOfCustomers' | 'registrationAges'>;
  /** Products are priced from this cache. Its owner starts and stops it; the consumer only reads it. */
  readonly catalogCache: CatalogCache;
  readonly logger: Logger;
  readonly metrics?: UsageConsumerMetrics;
  /** Most messages decided and appended together; a larger Kafka fetch is split. Default DEFAULT_CONSUMER_BATCH_SIZE. */
  readonly batchSize?: number;
  /**
   * Partitions processed at once by this process (each partition stays sequential). Default:
   * DEFAULT_PARTITIONS_CONCURRENTLY, or the topic's partitions when it has fewer.
   */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * Most bytes one fetch brings from a broker (kafkajs `maxBytes`), and from one partition
   * (`maxBytesPerPartition`): together with the partitions in hand they bound the memory the
   * consumer holds in fetched messages. Defaults 1 MiB and 256 KiB. A message larger than the
   * per-partition bound is still fetched (Kafka returns at least one record batch).
   */
  readonly maxFetchBytes?: number;
  readonly maxFetchBytesPerPartition?: number;
  /**
   * The one command path this consumer meters through and the states it decides on (issue 11
   * §1): its own per process, not the API's (createUsageBalanceWrites, given by the main job, which
   * sizes its cache: TALLY_CONSUMER_BALANCE_CACHE_SIZE and _BYTES).
   */
  readonly balanceWrites: UsageBalanceWrites;
  /** Where a group without committed offsets starts. Default true: usage is money, none may be left unread. */
  readonly fromBeginning?: boolean;
  /** How long the group waits for a silent member before giving its partitions to others. Default 30 000. */
  readonly sessionTimeoutMs?: number;
  /** Cap of the exponential backoff between retries of a transient failure. Default 5000. */
  readonly maxBackoffMs?: number;
  /** Codec of the dead letters this consumer writes (kafkajs's CompressionTypes); default none. */
  readonly compression?: CompressionTypes;
  /**
   * How long after its registration a balance that is registered but not yet opened (an opening
   * in progress) is waited for (its partition held, the others going on) before its usage goes to
   * the dead letters, unmetered, so the partition moves on. Default 30 000.
   */
  readonly balanceOpenWaitMs?: number;
  /**
   * How often the balances this consumer wrote since their last stored state get one (write-behind,
   * see DEFAULT_STATE_FLUSH_MS). Default 30 000; the main job's TALLY_CONSUMER_STATE_FLUSH_MS.
   */
  readonly stateFlushIntervalMs?: number;
  /** How often the group's lag is read from the broker for `metrics` (default 15 000, a scrape interval). */
  readonly groupLagIntervalMs?: number;
  /** Time comes in from outside, so tests control the events' occurredAt. */
  readonly clock?: () => Date;
}

export class UsageConsumerOptionsError extends Error {
  override readonly name = 'UsageConsumerOptionsError';
}

export interface ResolvedUsageConsumerOptions extends UsageConsumerOptions {
  readonly batchSize: number;
  /** Undefined: one per partition of the topic, read when the consumer starts. */
  readonly partitionsConsumedConcurrently: number | undefined;
  readonly maxFetchBytes: number;
  readonly maxFetchBytesPerPartition: number;
  readonly fromBeginning: boolean;
  readonly sessionTimeoutMs: number;
  readonly maxBackoffMs: number;
  readonly balanceOpenWaitMs: number;
  readonly stateFlushIntervalMs: number;
  readonly groupLagIntervalMs: number;
  readonly clock: () => Date;
}

const BROKER = /^[A-Za-z0-9.-]+:\d{1,5}$/;

function requireText(value: unknown, name: string): void {
  if (typeof value !== 'string' || value.trim().length === 0) throw new UsageConsumerOptionsError(`${name} must be a non-empty string`);
}

function integerOption(value: number | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageConsumerOptionsError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function requirePort(value: unknown, name: string, methods: readonly string[]): void {
  if (value === null || typeof value !== 'object' || methods.some((method) => typeof (value as Record<string, unknown>)[method] !== 'function')) {
    throw new UsageConsumerOptionsError(`${name} is required (an object with ${methods.join(', ')})`);
  }
}

/** The main job's TALLY_CONSUMER_SESSION_TIMEOUT_MS defaults to this too, so the two cannot disagree. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

/** Defaults of the fetch bounds, shared with the main job's TALLY_CONSUMER_MAX_FETCH_BYTES(_PER_PARTITION). */
// Fetched messages cost several times their size on the wire once kafkajs has made them objects
// (a heap snapshot of the consumer held 83,000 Buffers at 4 MiB and 1 MiB): 1 MiB a fetch, 256 KiB
// a partition is about one chunk (batchSize) of usage per partition in hand, enough to keep it busy.
export const DEFAULT_MAX_FETCH_BYTES = 1024 * 1024;
export const DEFAULT_MAX_FETCH_BYTES_PER_PARTITION = 256 * 1024;
export const MAX_PARTITIONS_CONCURRENTLY = 1024;
/**
 * Default of the partitions one process meters at once (TALLY_CONSUMER_PARTITIONS_CONCURRENTLY),
 * or the topic's partitions when it has fewer. Two keep the process deciding one chunk while PostgreSQL
 * appends another; a third in flight only waits, since every append takes the event store's
 * commit-order lock in turn (and with the lock taken out, for a core: six at once metered no
 * faster), and its chunk waits in memory. With six partitions at once instead of two, a consumer
 * spent more CPU per usage event, PostgreSQL too, and peaked some 15 MiB higher
 * (docs/benchmarks.md, 2026-12-03 late night; what the collector promotes did not change with
 * the chunks in flight, 2026-12-04; the lock taken out, 2026-12-04 morning).
 */
export const DEFAULT_PARTITIONS_CONCURRENTLY = 2;

/** How many partitions a process meters at once: the option if given, else the default or the topic's partitions if fewer. */
export function partitionsAtOnce(option: number | undefined, topicPartitions: number): number {
  return option ?? Math.min(Math.max(1, topicPartitions), DEFAULT_PARTITIONS_CONCURRENTLY);
}

/**
 * Default of the chunk size (the main job's TALLY_CONSUMER_BATCH_SIZE): the most usage events
 * decided and appended in one round of statements. A chunk in hand (its messages, decoded usage,
 * commands, states and append columns) lives across its round trips, so the young generation's
 * collections copy it again and again until they promote it: a smaller chunk keeps less alive
 * per partition, at the cost of more statements. 1,000 keeps some 15 MiB less than 2,000 at the
 * consumer's peak and costs PostgreSQL no measurable CPU per usage event; 500 costs it a fifth
 * to a quarter more (docs/benchmarks.md, 2026-12-01 late evening).
 */
export const DEFAULT_CONSUMER_BATCH_SIZE = 1000;
export const MAX_CONSUMER_BATCH_SIZE = 100_000;
/**
 * The consumer's stored states, kept write-behind (its balances' states are written many times a
 * second, so not on every write): every DEFAULT_STATE_FLUSH_MS, the balances written
 * CONSUMER_KEEP_AFTER_LOAD_EVENTS (@tally/ledger) events or more since their last stored state
 * get one, STATE_FLUSH_BATCH per statement; at a graceful stop, every balance written since its
 * last one; and a load that folded CONSUMER_KEEP_AFTER_LOAD_EVENTS or more keeps its result at
 * once. So a consumer that takes a balance over (a deploy, a rebalance, a restart) folds at most
 * what was written in the last interval before a crash (or fewer than twice that threshold),
 * nothing after a graceful stop, and a balance imported in bulk at most once. 30 s: a busy
 * balance costs one row per 30 s instead of one per write, a quiet one none until it has
 * gathered the threshold's events, and a crash leaves at most 30 s of its events to fold. 1000
 * rows a statement (about 300 KB of JSON) bounds each write, and the batches follow one another
 * until none is due.
 */
export const DEFAULT_STATE_FLUSH_MS = 30_000;
export const STATE_FLUSH_BATCH = 1000;
/**
 * Defaults of the byte bounds of the consumer's caches, shared with the main job's
 * TALLY_CONSUMER_BALANCE_CACHE_BYTES and TALLY_CONSUMER_REGISTRY_CACHE_BYTES: together with the
 * fetch bounds they keep one consumer process within 256 MiB (issue 11 §6, docs/benchmarks.md).
 * They leave room under CONSUMER_MAX_OLD_SPACE_MIB for what no budget weighs, measured in a
 * heap snapshot at 100,000 balances: the event store's two stream-header caches (up to about 29
 * MiB at 20,000 entries each; the folds no longer fill the one by number), the write-behind
 * ids (as many as the balance cache's entry bound: 5 MiB at 100,000), two or three chunks in
 * flight (9 to 17 MiB each at chunks of 2,000 usage events, about half that at the default
 * 1,000), code and connections (about 25 MiB).
 */
export const DEFAULT_BALANCE_CACHE_BYTES = 40 * 1024 * 1024;
/**
 * Balances whose state the consumer keeps (TALLY_CONSUMER_BALANCE_CACHE_SIZE): 50,000, about 14
 * MiB of compact states, well inside the byte budget, which then bounds only states with many
 * holds. Not more by default: within CONSUMER_MAX_OLD_SPACE_MIB a fuller cache costs the collector
 * more than its hits save. At 100,000 customers of two balances, used in turn, 50,000 took 239 to
 * 294 CPU ms per 1,000 usage events against 279 to 342 with 100,000, in four alternating pairs
 * (docs/benchmarks.md, 2026-12-02 night); a workload that comes back to fewer balances hits as
 * often with either.
 */
export const DEFAULT_BALANCE_CACHE_SIZE = 50_000;
export const DEFAULT_REGISTRY_CACHE_BYTES = 16 * 1024 * 1024;
/**
 * The V8 limits a process running only the consumer role is sized for, with the defaults above:
 * Node's own default lets the old space grow to several times the live objects before a full
 * collection, which is where most of an unlimited consumer's memory goes (README, "Memory of a
 * consumer process"). Given as node flags (NODE_OPTIONS) by whoever starts the process.
 * The young generation's semi-space is 8 MiB, not 2: a chunk in hand survives the scavenges that
 * come during its round trips, and with more room between them fewer of those come per chunk.
 * With chunks of DEFAULT_CONSUMER_BATCH_SIZE it saves a fifth of the consumer's CPU per usage
 * event and stays within 256 MiB at 100,000 balances (docs/benchmarks.md, 2026-12-01 late evening).
 */
export const CONSUMER_MAX_OLD_SPACE_MIB = 176;
export const CONSUMER_MAX_SEMI_SPACE_MIB = 8;
export const CONSUMER_NODE_OPTIONS = `--max-old-space-size=${CONSUMER_MAX_OLD_SPACE_MIB} --max-semi-space-size=${CONSUMER_MAX_SEMI_SPACE_MIB}`;

/** Checks every option before anything connects, so a misconfiguration stops start-up with its name. */
export function resolveUsageConsumerOptions(options: UsageConsumerOptions): ResolvedUsageConsumerOptions {
  const brokers = options.kafka?.brokers;
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((broker) => typeof broker !== 'string' || !BROKER.test(broker))) {
    throw new UsageConsumerOptionsError('kafka.brokers must be a non-empty list of "host:port"');
  }
  requireText(options.kafka.clientId, 'kafka.clientId');
  requireText(options.groupId, 'groupId');
  requireText(options.topic, 'topic');
  requireText(options.dlqTopic, 'dlqTopic');
  if (options.dlqTopic === options.topic) throw new UsageConsumerOptionsError('dlqTopic must differ from topic');
  // With credentials in it, the consumer would dead-letter nothing and meter nothing, each Avro
  // message failing its schema lookup.
  const registryProblem = registryUrlProblem(String(options.registryUrl), 'registryAuth');
  if (registryProblem !== undefined) throw new UsageConsumerOptionsError(`registryUrl: ${registryProblem}`);
  requirePort(options.eventStore, 'eventStore', ['appendMany', 'readAppendTraces', 'readEventsById', 'readStreamsPaged']);
  requirePort(options.balanceRegistry, 'balanceRegistry', ['balancesOfCustomers', 'registrationAges']);
  requirePort(options.catalogCache, 'catalogCache', ['getProduct']);
  requirePort(options.logger, 'logger', ['child']);
  if (options.metrics !== undefined) requirePort(options.metrics, 'metrics', ['batchProcessed', 'partitionsAssigned', 'groupLagRead']);
  if (options.clock !== undefined && typeof options.clock !== 'function') throw new UsageConsumerOptionsError('clock must be a function');
  if (
    options.maxFetchBytes !== undefined &&
    options.maxFetchBytesPerPartition !== undefined &&
    options.maxFetchBytesPerPartition > options.maxFetchBytes
  ) {
    throw new UsageConsumerOptionsError('maxFetchBytesPerPartition must not exceed maxFetchBytes');
  }
  if (options.fromBeginning !== undefined && typeof options.fromBeginning !== 'boolean') {
    throw new UsageConsumerOptionsError('fromBeginning must be a boolean');
  }
  return {
    ...options,
    batchSize: integerOption(options.batchSize, 'batchSize', DEFAULT_CONSUMER_BATCH_SIZE, 1, MAX_CONSUMER_BATCH_SIZE),
    partitionsConsumedConcurrently:
      options.partitionsConsumedConcurrently === undefined
        ? undefined
        : integerOption(options.partitionsConsumedConcurrently, 'partitionsConsumedConcurrently', 1, 1, MAX_PARTITIONS_CONCURRENTLY),
    maxFetchBytes: integerOption(options.maxFetchBytes, 'maxFetchBytes', DEFAULT_MAX_FETCH_BYTES, 1024, 1024 * 1024 * 1024),
    maxFetchBytesPerPartition: integerOption(
      options.maxFetchBytesPerPartition,
      'maxFetchBytesPerPartition',
      DEFAULT_MAX_FETCH_BYTES_PER_PARTITION,
      1024,
      1024 * 1024 * 1024,
    ),
    fromBeginning: options.fromBeginning ?? true,
    sessionTimeoutMs: integerOption(options.sessionTimeoutMs, 'sessionTimeoutMs', DEFAULT_SESSION_TIMEOUT_MS, 6000, 300_000),
    maxBackoffMs: integerOption(options.maxBackoffMs, 'maxBackoffMs', 5000, 10, 60_000),
    balanceOpenWaitMs: integerOption(options.balanceOpenWaitMs, 'balanceOpenWaitMs', 30_000, 0, 3_600_000),
    stateFlushIntervalMs: integerOption(options.stateFlushIntervalMs, 'stateFlushIntervalMs', DEFAULT_STATE_FLUSH_MS, 10, 3_600_000),
    groupLagIntervalMs: integerOption(options.groupLagIntervalMs, 'groupLagIntervalMs', 15_000, 10, 3_600_000),
    clock: options.clock ?? (() => new Date()),
  };
}
