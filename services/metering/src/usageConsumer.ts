import { performance } from 'node:perf_hooks';
import type { BalanceRef } from '@tally/catalog';
import type { CreditProduct, TallyError, UsageEvent } from '@tally/domain';
import { WrongExpectedRevisionError } from '@tally/event-store';
import { loadBalances, type LoadedBalance } from '@tally/ledger';
import { createKafka, kafkaConnectionConfig } from '@tally/kafka';
import { logLevel, Partitioners, type EachBatchPayload, type KafkaMessage, type LogEntry } from 'kafkajs';
import type { Level } from 'pino';
import { createBalanceStateCache } from './balanceStateCache';
import { BatchAbandonedError, createBatchRetrier, type BatchRetrier } from './batchRetrier';
import { deadLetterMessage } from './deadLetterMessage';
import { decideUsageBatch, type UsageDecision } from './decideUsageBatch';
import { priceUsageBatch, type UsageCharge, type UsageSkip } from './priceUsageBatch';
import { createCounterRegistry, type UsageConsumerCounters } from './usageConsumerCounters';
import { createStalledPartitions, type StalledPartition } from './stalledPartitions';
import { resolveUsageConsumerOptions, UsageConsumerOptionsError, type UsageConsumerOptions } from './usageConsumerOptions';
import { createUsageEventDecoder } from './usageEventDecoder';

/**
 * The metering consumer: usage events from Kafka become CreditConsumed events (and the warnings
 * they cause) on the balances' streams, exactly once in effect.
 *
 * Lifecycle contract (the main job owns signals):
 * - `start()` connects, joins the group and returns once consumption has started.
 * - `stop()` (call it on SIGTERM) finishes the batch in hand, commits its offsets, leaves the group
 *   (so the partitions move to the other members at once instead of after a session timeout),
 *   disconnects and resolves; the caller may then exit 0. A batch stuck retrying a dependency
 *   that is down is left uncommitted instead of holding up the shutdown: it is redelivered and,
 *   thanks to the deterministic event ids, applied once. Calling stop() again returns the same promise.
 */
export interface UsageConsumer {
  start(): Promise<void>;
  stop(): Promise<void>;
  counters(): UsageConsumerCounters;
  /** Partitions this member stopped at an undecodable batch (see stalledPartitions.ts). */
  stalledPartitions(): readonly StalledPartition[];
}

interface Decoded {
  readonly message: KafkaMessage;
  readonly usage: UsageEvent;
}

interface Rejected {
  readonly message: KafkaMessage;
  readonly error: TallyError;
  /** Known when the bytes decoded but the event could not be priced. */
  readonly usage?: UsageEvent;
}

const KAFKAJS_LEVELS: Record<number, Level> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createUsageConsumer(input: UsageConsumerOptions): UsageConsumer {
  const options = resolveUsageConsumerOptions(input);
  const { eventStore, catalogStore, catalogCache, topic, dlqTopic, batchSize, clock } = options;
  const logger = options.logger.child({ module: 'usage-consumer' });
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  const decoder = createUsageEventDecoder({ registryUrl: options.registryUrl, ...(options.registryAuth !== undefined ? { auth: options.registryAuth } : {}) });
  const balances = createBalanceStateCache(options.balanceCacheSize);
  const counters = createCounterRegistry();
  const stalls = createStalledPartitions(logger, clock);

  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    logLevel: logLevel.INFO,
    logCreator:
      () =>
      ({ namespace, level, log }: LogEntry) => {
        const { message, timestamp: _timestamp, ...fields } = log;
        kafkaLogger[KAFKAJS_LEVELS[level] ?? 'info']({ namespace, ...fields }, message);
      },
  });
  const consumer = kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: options.sessionTimeoutMs,
    heartbeatInterval: Math.min(3000, Math.floor(options.sessionTimeoutMs / 3)),
    allowAutoTopicCreation: false,
  });
  // Dead letters must not be lost or doubled by the producer's own retries: acks from all in-sync
  // replicas (acks=-1 on send) and the idempotent producer. kafkajs retries sends itself (an
  // idempotent producer needs unbounded retries to keep its guarantee), with the wait between tries
  // capped like ours and our heartbeats going on meanwhile; a send therefore waits for Kafka to
  // come back rather than failing, which holds the batch uncommitted just the same.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // Murmur2 on the key, as the Java client: a customer's dead letters share a partition, in order.
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: options.maxBackoffMs },
  });
  stalls.watch(consumer);
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    logger.error({ err: payload.error, restart: payload.restart }, 'consumer crashed');
  });

  /** A missing DLQ topic would hold the first bad message forever: refuse to start instead. */
  async function requireTopics(): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = [topic, dlqTopic].filter((name) => !existing.has(name));
      if (missing.length > 0) throw new UsageConsumerOptionsError(`Kafka topic(s) ${missing.join(', ')} do not exist; create them first`);
    } finally {
      await admin.disconnect();
    }
  }

  let started = false;
  let stopping: Promise<void> | undefined;

  async function decodeAll(messages: readonly KafkaMessage[]): Promise<{ decoded: Decoded[]; rejected: Rejected[] }> {
    const decoded: Decoded[] = [];
    const rejected: Rejected[] = [];
    for (const message of messages) {
      try {
        decoded.push({ message, usage: await decoder.decode(message.value, message.headers) });
      } catch (error) {
        // A registry outage fails the whole step (retried); only a verdict on the bytes themselves
        // sends a message to the dead letters.
        if ((error as TallyError).retriable !== false) throw error;
        rejected.push({ message, error: error as TallyError });
      }
    }
    return { decoded, rejected };
  }

  async function productsOf(refs: Iterable<BalanceRef>): Promise<Map<string, CreditProduct>> {
    const ids = new Set<string>();
    for (const ref of refs) ids.add(ref.productId);
    const products = new Map<string, CreditProduct>();
    await Promise.all(
      [...ids].map(async (id) => {
        const product = await catalogCache.getProduct(id);
        if (product !== undefined) products.set(id, product);
      }),
    );
    return products;
  }

  /** States of the balances the charges need: from memory, the rest loaded in one read. */
  async function statesFor(charges: readonly UsageCharge[], retrier: BatchRetrier): Promise<Map<string, LoadedBalance>> {
    const states = new Map<string, LoadedBalance>();
    const missing = new Set<string>();
    for (const { balance } of charges) {
      const cached = balances.get(balance.balanceId);
      if (cached !== undefined) states.set(balance.balanceId, cached);
      else missing.add(balance.balanceId);
    }
    if (missing.size === 0) return states;
    const loaded = await retrier.run('load balances', () => loadBalances(eventStore, [...missing]));
    for (const [balanceId, balance] of loaded) {
      states.set(balanceId, balance);
      // A registry row whose stream does not exist yet is not remembered: once the API opens the
      // balance, the next batch must see it.
      if (balance.state.status === 'open') balances.set(balanceId, balance);
    }
    return states;
  }

  /**
   * Decides the charges against the balances and appends every touched stream in one atomic
   * call, redoing the decision on fresh state when another writer got to a stream first.
   */
  async function apply(
    usages: readonly UsageEvent[],
    charges: readonly UsageCharge[],
    retrier: BatchRetrier,
  ): Promise<{ decision: UsageDecision; appended: number; matched: number }> {
    for (;;) {
      // Exactly-once effect, however long after: a charge whose first event id (derived from the
      // usage event id and the balance) is stored was applied by an earlier delivery. One query
      // for the whole batch.
      const stored =
        charges.length === 0 ? [] : await retrier.run('idempotency check', () => eventStore.readEventsById(charges.map((charge) => charge.firstEventId)));
      const applied = new Set(stored.map((event) => event.id));
      const states = await statesFor(
        charges.filter((charge) => !applied.has(charge.firstEventId)),
        retrier,
      );
      const decision = decideUsageBatch({ usages, charges, applied, states, at: clock().toISOString() });
      if (decision.appends.length === 0) return { decision, appended: 0, matched: 0 };
      try {
        // One transaction for every stream of the batch, each with the revision its decision
        // was made on: a concurrent writer (the API, another member after a rebalance) makes the
        // whole append fail instead of being overwritten, and nothing is half-written.
        const results = await retrier.run(
          'append',
          () => eventStore.appendMany(decision.appends.map((append) => append.request)),
          (error) => error instanceof WrongExpectedRevisionError,
        );
        let appended = 0;
        let matched = 0;
        results.forEach((result, index) => {
          const append = decision.appends[index]!;
          if (result.idempotent) {
            // Another member stored these very events between our check and our append (a
            // rebalance race): nothing was written, and our idea of the stream is not theirs.
            balances.delete(append.balanceId);
            return;
          }
          balances.set(append.balanceId, append.after);
          appended += append.request.events.length;
          matched += append.charges.length;
        });
        return { decision, appended, matched };
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError)) throw error;
        counters.values.conflicts += 1;
        const conflicted = new Set(error.streamIds);
        for (const append of decision.appends) {
          if (conflicted.has(append.request.streamId)) balances.delete(append.balanceId);
        }
        logger.info({ streams: error.streamIds }, 'another writer appended first; reloading those balances and redeciding the batch');
      }
    }
  }

  async function deadLetter(partition: number, rejected: readonly Rejected[], retrier: BatchRetrier): Promise<void> {
    if (rejected.length === 0) return;
    const at = clock();
    for (const { message, error, usage } of rejected) {
      logger.warn(
        {
          partition,
          offset: message.offset,
          customerId: usage?.customerId ?? message.key?.toString(),
          usageEventId: usage?.id,
          errorCode: error.code,
          reason: error.message,
        },
        'usage message dead-lettered',
      );
    }
    // One request per dead letter, in order: the broker limits a partition's record batch, and
    // several large bad messages together could exceed it where each alone fits. Bad input is
    // rare, so the extra round trips cost nothing that matters.
    for (const { message, error } of rejected) {
      await retrier.run('dead-letter', () =>
        producer.send({ topic: dlqTopic, acks: -1, compression: options.compression, messages: [deadLetterMessage({ topic, partition, message }, error, at)] }),
      );
    }
  }

  function logDetails(partition: number, decoded: readonly Decoded[], skips: readonly UsageSkip[], decision: UsageDecision): void {
    for (const skip of skips) {
      const { usage, message } = decoded[skip.index]!;
      logger.debug(
        { customerId: usage.customerId, balanceId: skip.balanceId, usageEventId: usage.id, partition, offset: message.offset, reason: skip.reason },
        'usage skipped',
      );
    }
    for (const charge of decision.matched) {
      const { usage, message } = decoded[charge.index]!;
      logger.debug(
        { customerId: usage.customerId, balanceId: charge.balance.balanceId, usageEventId: usage.id, partition, offset: message.offset, credits: String(charge.credits) },
        'usage charged',
      );
    }
  }

  async function processChunk(payload: EachBatchPayload, messages: readonly KafkaMessage[]): Promise<void> {
    const started = performance.now();
    const { batch } = payload;
    const { partition } = batch;
    const retrier = createBatchRetrier({
      liveness: payload,
      logger: logger.child({ partition }),
      maxBackoffMs: options.maxBackoffMs,
    });

    const { decoded, rejected } = await retrier.run('decode', () => decodeAll(messages));
    const usages = decoded.map((item) => item.usage);
    const byCustomer = await retrier.run('find balances', () => catalogStore.balancesOfCustomers([...new Set(usages.map((usage) => usage.customerId))]));
    const products = await retrier.run('read products', () => productsOf([...byCustomer.values()].flat()));
    const priced = priceUsageBatch(usages, byCustomer, products);
    const deadLetters = [...rejected, ...priced.invalid.map(({ index, error }): Rejected => ({ ...decoded[index]!, error }))];

    // Bad input never disappears: its dead letters are acknowledged by every in-sync replica
    // before this batch's offsets can be committed below. (A crash in between may dead-letter a
    // message twice; it never loses one.)
    await deadLetter(partition, deadLetters, retrier);

    const { decision, appended, matched } = await apply(usages, priced.charges, retrier);

    const skips: UsageSkip[] = [...priced.skips, ...decision.skips];
    for (const skip of skips) counters.skip(skip.reason);
    // Per-item logs only when asked for: at a million events, even unused log objects cost.
    if (logger.isLevelEnabled('debug')) logDetails(partition, decoded, skips, decision);

    const last = messages[messages.length - 1]!.offset;
    payload.resolveOffset(last);
    // Offsets are committed only here, after the appends (one PostgreSQL transaction) and the
    // dead letters are durable: a crash or rebalance before this line redelivers the batch, and
    // its charges are then found stored by id and skipped, so nothing is lost and nothing is
    // charged twice.
    await payload.commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: (BigInt(last) + 1n).toString() }] }] });

    const lag = Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(last) - 1n));
    const values = counters.values;
    values.consumed += messages.length;
    values.deadLettered += deadLetters.length;
    values.matched += matched;
    values.appended += appended;
    values.batches += 1;
    counters.lag(topic, partition, lag);
    const durationMs = performance.now() - started;
    options.metrics?.batchProcessed({ topic, partition, messages: messages.length, durationMs, lag });
    logger.debug(
      {
        partition,
        firstOffset: messages[0]!.offset,
        lastOffset: last,
        messages: messages.length,
        matched,
        skipped: skips.length,
        deadLettered: deadLetters.length,
        appended,
        lag,
        durationMs: Math.round(durationMs),
      },
      'usage batch committed',
    );
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { messages } = payload.batch;
    try {
      // Per-customer order: the key is the customer id, so a customer's events share a partition;
      // kafkajs hands over one partition's batches one at a time, in offset order, and chunks are
      // processed in that order too.
      for (let start = 0; start < messages.length; start += batchSize) {
        // On stop() the chunk in hand was finished and committed; the rest is redelivered to the
        // partition's next owner. A stale batch (the partition was sought) is not ours to commit.
        if (!payload.isRunning() || payload.isStale()) return;
        await processChunk(payload, messages.slice(start, start + batchSize));
      }
    } catch (error) {
      if (!(error instanceof BatchAbandonedError)) throw error;
      logger.info({ partition: payload.batch.partition, reason: error.message }, 'batch left uncommitted; it will be redelivered');
    }
  }

  return {
    async start() {
      if (started) throw new Error('the usage consumer was already started');
      started = true;
      await requireTopics();
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: options.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
        // A batch that cannot be decoded stops its partition there, visibly (stalledPartitions.ts).
        eachBatch: stalls.guard(eachBatch),
      });
      logger.info({ topic, groupId: options.groupId, dlqTopic }, 'usage consumer started');
    },

    stop() {
      stopping ??= (async () => {
        if (!started) return;
        // disconnect() stops fetching, waits for the batches in hand (see eachBatch), leaves the
        // group and closes the connections. The producer goes last: those batches may dead-letter.
        try {
          await consumer.disconnect();
        } finally {
          await producer.disconnect();
        }
        logger.info({ counters: counters.snapshot() }, 'usage consumer stopped');
      })();
      return stopping;
    },

    counters: () => counters.snapshot(),
    stalledPartitions: () => stalls.list(),
  };
}
