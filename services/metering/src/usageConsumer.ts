import { performance } from 'node:perf_hooks';
import { balanceStreamId, LruCache, TallyError, type CreditProduct, type FoldedBalance, type UsageEvent } from '@tally/domain';
import { DuplicateEventIdError, MarkerAlreadyRecordedError, StoredWithoutMarkerError } from '@tally/event-store';
import { createKafka, kafkaConnectionConfig, superviseConsumer } from '@tally/kafka';
import { createBackoff, createPeriodicWorker, createWorker, HeartbeatError, isTransientError, retry, type Worker } from '@tally/runtime';
import { CommandIdCollisionError, meteredUsageMarker, type BalanceRef } from '@tally/ledger';
import { logLevel, Partitioners, type ConsumerConfig, type EachBatchPayload, type KafkaMessage } from 'kafkajs';
import { deadLetterMessage } from './deadLetterMessage';
import {
  BalanceNotOpenedError,
  DeadLetterRefusedError,
  StoredProductInvalidError,
  UndecodableUsageEventError,
  UnknownSchemaIdError,
  UnmeterableUsageError,
} from './meteringErrors';
import { earlierRunCandidates, preparedBefore, type Decoded, type EarlierRuns, type Prepared, type Rejected } from './preparedChunk';
import { priceUsageBatch, type PricedUsageBatch, type UsageCharge, type UsageSkip } from './priceUsageBatch';
import { createCounterRegistry, type UsageConsumerCounters } from './usageConsumerCounters';
import { createStalledPartitions, type StalledPartition } from './stalledPartitions';
import { createOffsetCommitter, type OffsetCommitter } from './offsetCommitter';
import { createConsumerGroupLag } from './consumerGroupLag';
import {
  partitionsAtOnce,
  resolveUsageConsumerOptions,
  STATE_FLUSH_BATCH,
  UsageConsumerOptionsError,
  type PartitionHoldReason,
  type UsageConsumerOptions,
} from './usageConsumerOptions';
import { usageCommands } from './usageCommands';
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
 * - kafkajs giving up on the consumer (a crash it does not restart from) fails the worker
 *   (Worker.onFailure): nothing would be consumed any more. A lost group coordinator, which
 *   kafkajs does not restart from either, runs the consumer again instead (superviseConsumer.ts).
 */
export interface UsageConsumer extends Worker {
  counters(): UsageConsumerCounters;
  /** Partitions this member stopped at an undecodable batch (see stalledPartitions.ts). */
  stalledPartitions(): readonly StalledPartition[];
}

interface ChunkOutcome {
  readonly deadLettered: number;
  readonly appended: number;
  readonly matched: number;
  readonly skipped: number;
  /** Set when metering stopped at a usage event waiting for a balance's opening: everything before it is durable, nothing from it on was touched. */
  readonly heldAt?: OpeningHold | undefined;
}

/** Where a partition waits for a balance's opening (see awaitOpenings), and until when at most. */
interface OpeningHold {
  /** Offset of the first message waiting: the partition resumes from it. */
  readonly offset: string;
  /** When the wait of its balance ends (ms, Date.now()): the next look is no later. */
  readonly until: number;
  readonly balanceIds: readonly string[];
}

/** A usage event waiting for a balance's opening, found by awaitOpenings (its index in the chunk). */
interface Awaited {
  readonly index: number;
  readonly until: number;
  readonly balanceIds: readonly string[];
}

const NOTHING_METERED: ChunkOutcome = { deadLettered: 0, appended: 0, matched: 0, skipped: 0 };

const NONE_READ: EarlierRuns = { metered: new Set(), storedCharges: [] };

/** Unopened balances whose registration time is kept (registeredAt): some 200 bytes each, and rare. */
const UNOPENED_BALANCES_KEPT = 10_000;

/** A settled outcome: a failure of work done ahead is kept for when its chunk is processed. */
type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** A chunk of a partition's batch, its stateless work started (possibly ahead of its turn). */
interface Chunk {
  readonly messages: readonly KafkaMessage[];
  readonly step: Step;
  readonly prepared: Promise<Settled<Prepared>>;
}

interface Applied {
  /** The charges that became a CreditConsumed now. */
  readonly matched: readonly UsageCharge[];
  readonly appended: number;
  /** Usage waiting for a balance's opening past balanceOpenWaitMs: dead-lettered, unmarked. */
  readonly pending: ReadonlySet<number>;
  /** Set when usage still waits for an opening: nothing was appended (see awaitOpenings). */
  readonly awaited?: Awaited | undefined;
  /** Usage metered before (marked, or charged before markers existed), or earlier in the batch. */
  readonly already: readonly number[];
  /** Usage metered by this call (unless pending). */
  readonly fresh: ReadonlySet<number>;
  /** Some of the batch's usage was found metered by an earlier run: read, or refused by the append. */
  readonly metEarlierRuns: boolean;
}

/**
 * What a failure nobody anticipated becomes on a dead letter: its own code (a SQLSTATE, a Node
 * error code) kept in the reason and the cause-code header.
 */
function unmeterable(error: unknown): TallyError {
  if (error instanceof TallyError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const causeCode = typeof code === 'string' || typeof code === 'number' ? String(code) : undefined;
  const reason = error instanceof Error ? error.message : String(error);
  return new UnmeterableUsageError(causeCode, `metering failed${causeCode !== undefined ? ` (${causeCode})` : ''}: ${reason}`, { cause: error });
}

/**
 * One step of a chunk under the runtime's retry (built in processChunk): transient failures are
 * retried (those `isTransient` allows, by default isTransientError) while heartbeating; any other
 * is rethrown at once, for meterIsolating to isolate the message(s) behind it.
 */
type Step = <T>(what: string, operation: () => Promise<T>, isTransient?: (error: unknown) => boolean) => Promise<T>;

/**
 * Ends a chunk's retries when the consumer is stopping (or the batch went stale) while a
 * dependency is still down: the batch is left uncommitted and is redelivered to whichever member
 * owns the partition next, where deterministic event ids make the replay harmless.
 */
class BatchAbandonedError extends Error {
  override readonly name = 'BatchAbandonedError';
}

export function createUsageConsumer(input: UsageConsumerOptions): UsageConsumer {
  const options = resolveUsageConsumerOptions(input);
  const { eventStore, balanceRegistry, catalogCache, topic, dlqTopic, batchSize, clock } = options;
  const logger = options.logger.child({ module: 'usage-consumer' });
  const decoder = createUsageEventDecoder({ registryUrl: options.registryUrl, ...(options.registryAuth !== undefined ? { auth: options.registryAuth } : {}) });
  const counters = createCounterRegistry();
  const { commands, states: balanceStates } = options.balanceWrites;
  const stalls = createStalledPartitions(logger, clock);
  /**
   * Write-behind of the balances' stored states (policy: DEFAULT_STATE_FLUSH_MS). Every state it
   * keeps is one this consumer appended and committed (BalanceStates.flush), never one decided on
   * and not committed. A batch that leaves some behind runs the next at once, each bounded.
   */
  const stateFlush = createPeriodicWorker({
    name: 'balance-state-flush',
    logger,
    intervalMs: options.stateFlushIntervalMs,
    runAtStart: false,
    run: async () => {
      const { kept, behind } = await balanceStates.flush(STATE_FLUSH_BATCH);
      return kept > 0 && behind > 0;
    },
  });

  /** At a graceful stop, after the last batch committed: every balance behind gets its stored state, however few events it is behind. */
  async function flushAll(): Promise<void> {
    let total = 0;
    for (;;) {
      const { kept, behind } = await balanceStates.flush(STATE_FLUSH_BATCH, { all: true });
      total += kept;
      // A failed write (logged by flush) ends it: stored states are a shortcut, and the stop is bounded.
      if (kept === 0 || behind === 0) break;
    }
    logger.info({ kept: total }, 'balance states kept at stop');
  }

  const kafka = createKafka({
    ...kafkaConnectionConfig(options.kafka),
    logLevel: logLevel.INFO,
    logger,
  });
  const consumer = kafka.consumer({ groupId: options.groupId, ...usageConsumerKafkaSettings(options) });
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
  /** Offsets committed off the fetch cycle (offsetCommitter.ts); one per run, closed at stop. */
  let committer: OffsetCommitter = createOffsetCommitter({ topic, logger });
  /**
   * Partitions whose last chunk found no usage metered before: their next chunk is appended
   * without reading its earlier runs first (apply), one round trip and one index probe per
   * marker and charge fewer per chunk in the steady state, since the append checks them anyway.
   * A partition just assigned, or one whose chunk met earlier runs (a redelivery comes as a run
   * of chunks, each of whose appends would otherwise fail once), reads first until a chunk
   * finds none. A hint only: what is charged never depends on it.
   */
  const partitionsWithoutEarlierRuns = new Set<number>();
  /**
   * When each balance found registered but not opened was registered (ms, Date.now()), from the
   * registry (registeredAt). A registration's time never changes, so a cache: one it no longer
   * holds is read again, to the same answer.
   */
  const registrations = new LruCache<string, number>(UNOPENED_BALANCES_KEPT);
  /**
   * Partitions held out of the fetch (holdPartition), at a dead letter the topic refused or at
   * usage waiting for a balance's opening: how many holds in a row, for the backoff before the
   * next look, and the timers that resume them (with their partitions).
   */
  const heldInARow = new Map<number, number>();
  const resumeTimers = new Map<NodeJS.Timeout, number>();
  const holdBackoff = createBackoff({ initialDelayMs: Math.min(1000, options.maxBackoffMs), maxDelayMs: options.maxBackoffMs, jitter: 'equal' });
  // Offsets handed over under the old assignment are not this member's to commit any more; a
  // partition that comes back may have been metered by another member meanwhile.
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    committer.forget();
    partitionsWithoutEarlierRuns.clear();
    heldInARow.clear();
    options.metrics?.partitionsAssigned({ topic, partitions: [...(payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b) });
  });
  /** The worker's own failure report (createWorker): set once it starts. */
  let failWorker: ((error: unknown) => void) | undefined;
  // kafkajs gave up: no partition is consumed any more, so the worker fails rather than run on as
  // if metering; a lost coordinator runs again (superviseConsumer.ts).
  const supervised = superviseConsumer(consumer, { logger, fail: (error) => failWorker?.(error) });

  /**
   * A missing DLQ topic would hold the first bad message forever: refuse to start instead.
   * Returns the usage topic's partition count.
   */
  async function requireTopics(): Promise<number> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = [topic, dlqTopic].filter((name) => !existing.has(name));
      if (missing.length > 0) throw new UsageConsumerOptionsError(`Kafka topic(s) ${missing.join(', ')} do not exist; create them first`);
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return topics[0]?.partitions.length ?? 1;
    } finally {
      await admin.disconnect();
    }
  }


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

  /**
   * The products of these balances. A stored product that fails today's validation (written by an
   * older version, or by hand) is returned among the unusable ones: its customers' usage cannot be
   * priced, so it goes to the dead letters with the reason, while everything else is metered.
   */
  async function productsOf(refs: Iterable<BalanceRef>): Promise<{ products: Map<string, CreditProduct>; unusable: Map<string, TallyError> }> {
    const ids = new Set<string>();
    for (const ref of refs) ids.add(ref.productId);
    const products = new Map<string, CreditProduct>();
    const unusable = new Map<string, TallyError>();
    await Promise.all(
      [...ids].map(async (id) => {
        try {
          const product = await catalogCache.getProduct(id);
          if (product !== undefined) products.set(id, product);
        } catch (error) {
          // The one refusal of a product the catalog has (CatalogStore.getProduct), in its own words
          // (storedProductInvalid). Anything else (the catalog away) fails the chunk, as it did.
          if (!(error instanceof StoredProductInvalidError)) throw error;
          unusable.set(id, error);
        }
      }),
    );
    return { products, unusable };
  }

  /**
   * When each of these balances was registered (ms, Date.now()): the registry's created_at, read as
   * an age by the database's own clock (registrationAges), so that no host's clock skew moves it.
   */
  async function registeredAt(balanceIds: readonly string[], step: Step): Promise<Map<string, number>> {
    const known = new Map<string, number>();
    const unknown: string[] = [];
    for (const balanceId of balanceIds) {
      const at = registrations.get(balanceId);
      if (at === undefined) unknown.push(balanceId);
      else known.set(balanceId, at);
    }
    if (unknown.length === 0) return known;
    const ages = await step('read registrations', () => balanceRegistry.registrationAges(unknown));
    const now = Date.now();
    for (const balanceId of unknown) {
      const age = ages.get(balanceId);
      // Found by balancesOfCustomers, so registered; should it be gone, it counts from now.
      const at = age === undefined ? now : now - age;
      if (age !== undefined) registrations.set(balanceId, at);
      known.set(balanceId, at);
    }
    return known;
  }

  /**
   * Finds the charged balances that are registered but whose opening event is not appended yet:
   * usage must not be metered as "nothing to charge" against an opening in progress, since
   * metering is final. Such a balance is waited for until balanceOpenWaitMs after its
   * registration (registeredAt): a durable time every member and every restart agrees on, so a
   * balance whose opening never comes costs its partition one wait, not one per chunk, restart or
   * member. While one is in its wait, the first usage charging it is returned as `awaited`: its
   * partition waits there, out of the fetch (holdPartition), and looks again. Past the wait, its
   * usage is returned as pending, to be dead-lettered unmarked, so that the partition moves on and
   * a replay meters it later. The states come from memory, the rest loaded in one batch
   * (BalanceStates.loadMany), and handed to the command path with the usage still to meter
   * (`states`): a full cache need not have kept them.
   */
  async function awaitOpenings(
    charges: readonly UsageCharge[],
    step: Step,
  ): Promise<{ readonly pending: Set<number>; readonly states: ReadonlyMap<string, FoldedBalance>; readonly awaited?: Awaited }> {
    if (charges.length === 0) return { pending: new Set(), states: new Map() };
    const states = await step('load balances', () => balanceStates.loadMany(charges.map((charge) => charge.balance.balanceId)));
    const waiting = charges.filter((charge) => states.get(charge.balance.balanceId)?.state.status !== 'open');
    if (waiting.length === 0) return { pending: new Set<number>(), states };
    const since = await registeredAt([...new Set(waiting.map((charge) => charge.balance.balanceId))], step);
    const now = Date.now();
    const waitEnds = (charge: UsageCharge) => since.get(charge.balance.balanceId)! + options.balanceOpenWaitMs;
    const inTheWait = waiting.filter((charge) => now < waitEnds(charge));
    if (inTheWait.length > 0) {
      // The first usage waiting, in offset order: what comes before it is metered, it and what follows wait.
      const index = Math.min(...inTheWait.map((charge) => charge.index));
      const its = inTheWait.filter((charge) => charge.index === index);
      return {
        pending: new Set(),
        states,
        awaited: { index, until: Math.min(...its.map(waitEnds)), balanceIds: [...new Set(its.map((charge) => charge.balance.balanceId))] },
      };
    }
    return { pending: new Set(waiting.map((charge) => charge.index)), states };
  }

  /** What earlier runs metered of a batch's usage (see EarlierRuns). */
  async function readEarlierRuns(usages: readonly UsageEvent[], priced: PricedUsageBatch, excluded: ReadonlySet<number>, step: Step): Promise<EarlierRuns> {
    const { markers, eventIds } = earlierRunCandidates(usages, priced, excluded);
    // The markers, and the charges stored by id (see apply), in one read: one round trip.
    const traces = await step('metered check', () => eventStore.readAppendTraces(markers, eventIds));
    return { metered: traces.markers, storedCharges: traces.events };
  }

  /**
   * Meters a priced batch: each usage event not metered before is decided against the balances
   * and appended, every touched stream and the usage events' markers in one atomic call,
   * redoing the decision on fresh state when another writer got to a stream or a usage event
   * first.
   *
   * Exactly once, whenever: a usage event is metered at its first delivery, with the catalog and
   * balances of that moment, and its marker (customer and usage id) is recorded in the same
   * transaction as its charges, whatever they are (several balances, one, or none: no balance, no
   * matching rule, zero cost). A later delivery finds the marker and changes nothing, however
   * the rules, prices or balances changed meanwhile.
   */
  async function apply(
    usages: readonly UsageEvent[],
    priced: PricedUsageBatch,
    excluded: ReadonlySet<number>,
    step: Step,
    readAhead: EarlierRuns | undefined,
  ): Promise<Applied> {
    const markers = usages.map((usage) => meteredUsageMarker(usage.customerId, usage.id));
    // No earlier runs read ahead: the first pass decides as if there were none (see below).
    let earlier: EarlierRuns | undefined = readAhead ?? NONE_READ;
    let metEarlierRuns = false;
    for (;;) {
      const unread = earlier === NONE_READ;
      // The first pass decides on the earlier runs read ahead (while the previous chunk was
      // being appended), which may miss what that chunk metered: a usage id in both chunks. Or,
      // on a partition whose chunks find none, on none read at all. Either way the append checks
      // every marker (MarkerAlreadyRecordedError) and, with markers, every event id
      // (StoredWithoutMarkerError: a charge stored by a consumer from before markers;
      // DuplicateEventIdError: an id stored on another balance) itself, and writes nothing when
      // one is found; the next pass reads them, after: charged once, at its first delivery.
      const { metered, storedCharges } = earlier ?? (await readEarlierRuns(usages, priced, excluded, step));
      earlier = undefined;
      if (metered.size > 0 || storedCharges.length > 0) metEarlierRuns = true;
      // Usage to meter now: not metered before, the first of its id in the batch, not dead-lettered.
      const fresh = new Set<number>();
      const seen = new Set<string>();
      const already: number[] = [];
      markers.forEach((marker, index) => {
        if (excluded.has(index)) return;
        if (metered.has(marker) || seen.has(marker)) already.push(index);
        else {
          seen.add(marker);
          fresh.add(index);
        }
      });
      let charges = priced.charges.filter((charge) => fresh.has(charge.index));
      // Usage charged before markers existed and after migration 005's backfill (a consumer of
      // the previous version still running during the upgrade) has its charges stored by id but
      // no marker: it counts as metered, and its marker is recorded now.
      const legacy = new Set<number>();
      if (storedCharges.length > 0) {
        const chargeOf = new Map(charges.map((charge) => [charge.firstEventId, charge]));
        for (const event of storedCharges) {
          const charge = chargeOf.get(event.id);
          // A charge of usage found marked (or repeated in the batch) needs no second look.
          if (charge === undefined) continue;
          if (event.streamId !== balanceStreamId(charge.balance.balanceId)) {
            throw new CommandIdCollisionError(`usage charge ${charge.commandId} maps to event ${event.id}, stored in stream ${event.streamId}`);
          }
          legacy.add(charge.index);
        }
        charges = charges.filter((charge) => !legacy.has(charge.index));
        for (const index of legacy) {
          fresh.delete(index);
          already.push(index);
        }
      }
      const { pending, states: loaded, awaited } = await awaitOpenings(charges, step);
      // Nothing of this chunk is appended: meter splits it at the usage waiting (see meter).
      if (awaited !== undefined) return { pending, already, fresh, metEarlierRuns, awaited, matched: [], appended: 0 };
      charges = charges.filter((charge) => !pending.has(charge.index));
      // Every usage event metered now is marked, whatever it charged; one still waiting for a
      // balance's opening is not (it is dead-lettered, and a replay meters it).
      const toMark = [...fresh, ...legacy].filter((index) => !pending.has(index)).map((index) => markers[index]!);
      const outcome = { pending, already, fresh, metEarlierRuns };
      if (charges.length === 0 && toMark.length === 0) return { ...outcome, matched: [], appended: 0 };
      try {
        // The one command path: one transaction for every stream of the batch, each with the
        // revision its decision was made on, and the markers: a concurrent writer (the API,
        // another member after a rebalance) makes the append fail instead of being overwritten,
        // and nothing is half-written; the record of what was metered and its charges cannot
        // disagree. A conflict is settled inside (only the moved streams' tails are read). The
        // markers checked above stand for the earlier runs, and only counts are needed back.
        const at = clock().toISOString();
        const outcomes = await step(
          'append',
          async () => {
            const results = await commands.execute(usageCommands(usages, charges, at), {
              markers: toMark,
              earlierRunsChecked: true,
              withEvents: false,
              optimistic: true,
              known: loaded,
              onConflict: () => {
                counters.values.conflicts += 1;
              },
            });
            // Conflicts past the path's own retries (ConcurrencyExhaustedError) are retried like any transient failure.
            const transient = results.find((result) => !result.ok && isTransientError(result.error));
            if (transient !== undefined && !transient.ok) throw transient.error;
            return results;
          },
          // A usage event another member metered first: redecided below, not retried as it is.
          (error) => !(error instanceof MarkerAlreadyRecordedError) && isTransientError(error),
        );
        let appended = 0;
        const matched: UsageCharge[] = [];
        outcomes.forEach((result, index) => {
          // ConsumeUsage is never refused on an open balance (the decider charges usage that has
          // happened), and only open balances reach here: an error is a fault to isolate.
          if (!result.ok) throw result.error;
          // Found stored by the command path itself, nothing written now (with markers the append
          // refuses stored events instead: StoredWithoutMarkerError, below).
          if (result.replayed) return;
          appended += result.appended;
          // A 0-credit charge only frees a hold (priceUsageBatch): no CreditConsumed, not matched.
          if (charges[index]!.credits > 0n) matched.push(charges[index]!);
        });
        return { ...outcome, matched, appended };
      } catch (error) {
        const foundByTheAppend = error instanceof MarkerAlreadyRecordedError || error instanceof StoredWithoutMarkerError;
        if (unread && (foundByTheAppend || error instanceof DuplicateEventIdError)) {
          // Earlier runs this pass did not look for (a redelivery): read next pass, decided again.
          metEarlierRuns = true;
          logger.debug({ err: error }, 'the append found usage metered before; reading what was and deciding again');
          continue;
        }
        if (!foundByTheAppend) throw error;
        metEarlierRuns = true;
        counters.values.conflicts += 1;
        // Another writer metered some of these usage events first: another member (a rebalance
        // race) or a consumer from before markers. It appended to their balances too: the states
        // held are stale, which the next append's expected revisions find (then only the tails are read).
        logger.info({ err: error }, 'another writer metered some of these usage events first; redeciding the batch');
      }
    }
  }

  async function deadLetter(partition: number, rejected: readonly Rejected[], step: Step): Promise<void> {
    if (rejected.length === 0) return;
    const at = clock();
    // One request per dead letter, in order: the broker limits a partition's record batch, and
    // several large bad messages together could exceed it where each alone fits. Bad input is
    // rare, so the extra round trips cost nothing that matters.
    for (const { message, error, usage } of rejected) {
      // The usage event it names, decoded or read as far as it can be: a lookup of that event
      // (GET /v1/customers/{customerId}/usage-events/{eventId}) then says it was dead-lettered.
      // Bytes that could not be read name nothing: not read again (a flood of an unknown schema
      // id would ask the registry twice per message).
      const unreadable = error instanceof UndecodableUsageEventError || error instanceof UnknownSchemaIdError;
      const names = usage !== undefined ? { customerId: usage.customerId, usageEventId: usage.id } : unreadable ? null : await decoder.identify(message.value, message.headers);
      logger.warn(
        {
          partition,
          offset: message.offset,
          customerId: names?.customerId ?? message.key?.subarray(0, 256).toString(),
          usageEventId: names?.usageEventId,
          errorCode: error.code,
          reason: error.message,
        },
        'usage message dead-lettered',
      );
      try {
        // What can pass is retried here, as long as it takes (kafkajs's own retries first).
        await step('dead-letter', () =>
          producer.send({ topic: dlqTopic, acks: -1, compression: options.compression, messages: [deadLetterMessage({ topic, partition, message }, error, at, names)] }),
        );
      } catch (failure) {
        if (failure instanceof BatchAbandonedError || failure instanceof HeartbeatError) throw failure;
        // Refused for good (a max.message.bytes below the letter, an ACL): held, not lost, and loud.
        counters.values.deadLetterRefusals += 1;
        logger.error(
          { partition, offset: message.offset, dlqTopic, errorCode: error.code, err: failure },
          'the dead-letter topic refused a dead letter; this partition waits at its message and tries again',
        );
        throw new DeadLetterRefusedError(partition, message.offset, `the dead-letter topic ${dlqTopic} refused the letter of partition ${partition} offset ${message.offset}`, {
          cause: failure,
        });
      }
    }
  }

  /**
   * Holds a partition at offset `next`, out of the fetch: at a dead letter the topic refused, or at
   * usage waiting for a balance's opening. kafkajs fetches a broker's partitions again only once
   * every batch of the last fetch is done, so waiting inside this batch would stop every other
   * partition too; paused, the partition is resumed after a backoff (no later than `until`) to
   * try again, which redelivers it from that message. Everything before it is durable (the
   * chunks' appends, their letters, sent in offset order): committed. Only while the batch is
   * live: a stopping consumer or a sought partition is not held, its rest is redelivered.
   */
  async function holdPartition(payload: EachBatchPayload, next: bigint, reason: PartitionHoldReason, until = Number.POSITIVE_INFINITY): Promise<void> {
    const { partition } = payload.batch;
    const resume = payload.isRunning() && !payload.isStale() ? payload.pause() : undefined;
    payload.resolveOffset((next - 1n).toString());
    await committer.done(partition, next, payload.commitOffsetsIfNecessary);
    if (resume === undefined) return;
    const holds = (heldInARow.get(partition) ?? 0) + 1;
    heldInARow.set(partition, holds);
    options.metrics?.partitionHeld?.({ topic, partition, reason });
    const timer = setTimeout(
      () => {
        resumeTimers.delete(timer);
        resume();
        options.metrics?.partitionResumed?.({ topic, partition });
      },
      Math.max(0, Math.min(holdBackoff.delayMs(holds), until - Date.now())),
    );
    resumeTimers.set(timer, partition);
  }

  function logDetails(partition: number, decoded: readonly Decoded[], skips: readonly UsageSkip[], matched: readonly UsageCharge[]): void {
    // One line per usage event: trace, below the per-chunk debug lines (a consumer at debug
    // level would otherwise print thousands of these a second around each of those).
    for (const skip of skips) {
      const { usage, message } = decoded[skip.index]!;
      logger.trace(
        { customerId: usage.customerId, balanceId: skip.balanceId, usageEventId: usage.id, partition, offset: message.offset, reason: skip.reason },
        'usage skipped',
      );
    }
    for (const charge of matched) {
      const { usage, message } = decoded[charge.index]!;
      logger.trace(
        { customerId: usage.customerId, balanceId: charge.balance.balanceId, usageEventId: usage.id, partition, offset: message.offset, credits: String(charge.credits) },
        'usage charged',
      );
    }
  }

  /**
   * The stateless stage of metering some messages: nothing here reads or depends on a balance's
   * state, so it may run while the chunk before is appended (eachBatch). Its earlier runs, when
   * `readEarlier`, are read last, as late as possible.
   */
  async function prepare(messages: readonly KafkaMessage[], step: Step, readEarlier: boolean): Promise<Prepared> {
    const { decoded, rejected } = await step('decode', () => decodeAll(messages));
    const usages = decoded.map((item) => item.usage);
    const byCustomer = await step('find balances', () => balanceRegistry.balancesOfCustomers([...new Set(usages.map((usage) => usage.customerId))]));
    const { products, unusable } = await step('read products', () => productsOf([...byCustomer.values()].flat()));
    const priced = priceUsageBatch(usages, byCustomer, products, unusable);
    const invalid = new Set(priced.invalid.map(({ index }) => index));
    const earlier = readEarlier ? await readEarlierRuns(usages, priced, invalid, step) : undefined;
    return { decoded, rejected, usages, priced, invalid, earlier };
  }

  /**
   * Meters some messages of a partition, in order. Throws the first failure retrying cannot fix.
   * `ahead` is their stateless stage when it was done already: ahead (eachBatch), or as part of
   * their chunk's (the usage before one waiting, below). Its failure is thrown here, as if it had
   * happened now, so it is isolated like any other failure of these messages.
   */
  async function meter(partition: number, messages: readonly KafkaMessage[], step: Step, ahead?: Settled<Prepared>): Promise<ChunkOutcome> {
    if (ahead !== undefined && !ahead.ok) throw ahead.error;
    // A chunk split to isolate a failure reads its earlier runs first.
    const prepared = ahead?.value ?? (await prepare(messages, step, true));
    const { decoded, rejected, usages, priced, invalid, earlier } = prepared;

    // The write stage: decided on the balances' states as the previous chunk's append left them.
    const { matched, appended, pending, already, fresh, metEarlierRuns, awaited } = await apply(usages, priced, invalid, step, earlier);
    if (metEarlierRuns) partitionsWithoutEarlierRuns.delete(partition);
    else partitionsWithoutEarlierRuns.add(partition);
    if (awaited !== undefined) {
      // Usage waits for a balance's opening: the messages before it are metered on their own (none
      // of their balances waits; states never go back to unopened), and the partition is held at
      // it (processChunk), so that it and whatever follows it keep their order. Their stateless
      // stage is this chunk's, cut to them (preparedBefore): nothing is read twice. Its earlier
      // runs are the ones apply just decided on (usage is found waiting only in its first pass),
      // and the append checks them anyway.
      const offset = decoded[awaited.index]!.message.offset;
      const before = messages.filter((message) => BigInt(message.offset) < BigInt(offset));
      const done = before.length > 0 ? await meterIsolating(partition, before, step, { ok: true, value: preparedBefore(prepared, awaited.index) }) : NOTHING_METERED;
      return { ...done, heldAt: done.heldAt ?? { offset, until: awaited.until, balanceIds: awaited.balanceIds } };
    }

    // Bad input never disappears: its dead letters are acknowledged by every in-sync replica
    // before this chunk's offsets can be committed. They are sent after the append, so that a
    // chunk split to isolate a failure does not send its dead letters once per try. (A crash in
    // between may dead-letter a message twice; it never loses one.)
    // In offset order: when the topic refuses one, every message before it is durable, and its
    // partition is held at it (holdPartition).
    const deadLetters: Rejected[] = [
      ...rejected,
      ...priced.invalid.map(({ index, error }): Rejected => ({ ...decoded[index]!, error })),
      ...[...pending].map((index): Rejected => ({
        ...decoded[index]!,
        error: new BalanceNotOpenedError(`a credit balance of customer ${usages[index]!.customerId} is registered but was not opened within ${options.balanceOpenWaitMs} ms`),
      })),
    ].sort((a, b) => (BigInt(a.message.offset) < BigInt(b.message.offset) ? -1 : 1));
    await deadLetter(partition, deadLetters, step);

    const skips: UsageSkip[] = [
      ...priced.skips.filter((skip) => fresh.has(skip.index) && !pending.has(skip.index)),
      ...already.map((index): UsageSkip => ({ index, reason: 'already_applied' })),
    ];
    for (const skip of skips) counters.skip(skip.reason);
    // Per-item logs only when asked for: at a million events, even unused log objects cost.
    if (logger.isLevelEnabled('debug')) logDetails(partition, decoded, skips, matched);
    return { deadLettered: deadLetters.length, appended, matched: matched.length, skipped: skips.length };
  }

  /**
   * Meters messages, isolating what cannot be metered: a failure that retrying cannot fix (a
   * transient one was already retried by the step that met it) splits the messages in halves,
   * each metered on its own, down to the single message(s) that cause it, which go to the dead
   * letters with the failure's reason and code. Everything else is metered, so no message and no
   * deterministic failure stalls the partition. Halves run in order and a half that was metered
   * is durable before the next begins; redoing work after a split changes nothing, since what was
   * metered is marked. Only the first try uses the stage done `ahead`: the halves do their own.
   */
  async function meterIsolating(
    partition: number,
    messages: readonly KafkaMessage[],
    step: Step,
    ahead?: Settled<Prepared>,
  ): Promise<ChunkOutcome> {
    try {
      return await meter(partition, messages, step, ahead);
    } catch (error) {
      // A refused dead letter is retriable too: the topic's fault, not these messages'.
      if (error instanceof BatchAbandonedError || error instanceof HeartbeatError || isTransientError(error)) throw error;
      if (messages.length === 1) {
        const message = messages[0]!;
        await deadLetter(partition, [{ message, error: unmeterable(error) }], step);
        return { deadLettered: 1, appended: 0, matched: 0, skipped: 0 };
      }
      logger.warn(
        { partition, firstOffset: messages[0]!.offset, messages: messages.length, err: error },
        'metering failed in a way retrying cannot fix; splitting the chunk to isolate the message(s) that cause it',
      );
      const middle = Math.ceil(messages.length / 2);
      const first = await meterIsolating(partition, messages.slice(0, middle), step);
      // Held inside the first half: the second is not touched (it comes after the usage waiting).
      if (first.heldAt !== undefined) return first;
      const second = await meterIsolating(partition, messages.slice(middle), step);
      return {
        deadLettered: first.deadLettered + second.deadLettered,
        appended: first.appended + second.appended,
        matched: first.matched + second.matched,
        skipped: first.skipped + second.skipped,
        heldAt: second.heldAt,
      };
    }
  }

  /**
   * Starts a chunk's stateless stage. Its outcome is settled (kept, never thrown here): a failure
   * of work done ahead belongs to this chunk and surfaces when it is processed, not in the chunk
   * being appended meanwhile; nor is it ever an unhandled rejection if that chunk never comes.
   */
  function beginChunk(payload: EachBatchPayload, messages: readonly KafkaMessage[]): Chunk {
    const { partition } = payload.batch;
    // Once the consumer stops or the batch goes stale, the heartbeat aborts the chunk: the attempt
    // in flight finishes (its outcome may still be committed), no further one starts.
    const abandon = new AbortController();
    const stepLogger = logger.child({ partition });
    const step: Step = (what, operation, isTransient = isTransientError) =>
      retry(operation, {
        what,
        logger: stepLogger,
        maxDelayMs: options.maxBackoffMs,
        // Equal jitter: members retrying against one recovering service spread out, and none
        // retries sooner than half the ceiling, so a stop is noticed before the next attempt.
        jitter: 'equal',
        isTransient,
        signal: abandon.signal,
        // Keeps the group membership while a step runs or waits, so a dependency that is down
        // does not cost the partition. A failed heartbeat (a rebalance) ends the batch: see eachBatch.
        heartbeat: {
          everyMs: 1000,
          beat: () => {
            if (!payload.isRunning() || payload.isStale()) abandon.abort(new BatchAbandonedError('consumer stopping while a dependency is down'));
            return payload.heartbeat();
          },
        },
      });
    const prepared = prepare(messages, step, !partitionsWithoutEarlierRuns.has(partition)).then(
      (value): Settled<Prepared> => ({ ok: true, value }),
      (error: unknown): Settled<Prepared> => ({ ok: false, error }),
    );
    return { messages, step, prepared };
  }

  /** Meters a chunk and hands its offsets over; returns whether its partition is now held (at usage waiting for an opening). */
  async function processChunk(payload: EachBatchPayload, chunk: Chunk, ahead: Settled<Prepared>, started: number): Promise<boolean> {
    const { batch } = payload;
    const { partition } = batch;
    const { step } = chunk;

    const { deadLettered, appended, matched, skipped, heldAt } = await meterIsolating(partition, chunk.messages, step, ahead);
    const meteredMs = performance.now() - started;

    // Offsets are handed to the committer only here, after the appends (one PostgreSQL transaction
    // each) and the dead letters are durable: a crash or rebalance before the commit redelivers the
    // chunk, and its usage events are then found marked as metered and skipped, so nothing is lost
    // and nothing is charged twice. The commit itself follows off the fetch cycle, in order.
    // Held at usage waiting for an opening: up to that message, and the partition waits there.
    const messages = heldAt === undefined ? chunk.messages : chunk.messages.filter((message) => BigInt(message.offset) < BigInt(heldAt.offset));
    if (heldAt === undefined) {
      const last = messages[messages.length - 1]!.offset;
      payload.resolveOffset(last);
      await committer.done(partition, BigInt(last) + 1n, payload.commitOffsetsIfNecessary);
      heldInARow.delete(partition);
    } else {
      logger.warn(
        { partition, offset: heldAt.offset, balanceIds: heldAt.balanceIds, waitEndsInMs: Math.max(0, heldAt.until - Date.now()) },
        `waiting for credit balance(s) ${heldAt.balanceIds.join(', ')} to be opened; this partition waits at its message, the others go on`,
      );
      await holdPartition(payload, BigInt(heldAt.offset), 'balance_not_opened', heldAt.until);
      if (messages.length === 0) return true;
    }
    const last = messages[messages.length - 1]!.offset;

    const lag = Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(last) - 1n));
    const values = counters.values;
    values.consumed += messages.length;
    values.deadLettered += deadLettered;
    values.matched += matched;
    values.appended += appended;
    values.batches += 1;
    counters.lag(topic, partition, lag);
    const durationMs = performance.now() - started;
    options.metrics?.batchProcessed({ topic, partition, messages: messages.length, durationMs, lag, lastTimestampMs: Number(messages[messages.length - 1]!.timestamp) });
    logger.debug(
      {
        partition,
        firstOffset: messages[0]!.offset,
        lastOffset: last,
        messages: messages.length,
        matched,
        skipped,
        deadLettered,
        appended,
        lag,
        // Chunk start to appends returned, and to offsets handed over: the freshness bench's stages.
        meteredMs: Math.round(meteredMs * 10) / 10,
        durationMs: Math.round(durationMs * 10) / 10,
      },
      'usage batch metered',
    );
    return heldAt !== undefined;
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { messages } = payload.batch;
    const live = () => payload.isRunning() && !payload.isStale();
    // The chunk whose stateless stage runs ahead: at most one (memory: one chunk ahead).
    let next: Chunk | undefined;
    try {
      // Per-customer order: the key is the customer id, so a customer's events share a partition;
      // kafkajs hands over one partition's batches one at a time, in offset order, and chunks are
      // processed in that order too.
      for (let start = 0; start < messages.length; start += batchSize) {
        // On stop() the chunk in hand was finished and committed; the rest is redelivered to the
        // partition's next owner. A stale batch (the partition was sought) is not ours to commit.
        if (!live()) return;
        // Between chunks as well: a step heartbeats only once it has run a second, so a batch of
        // many shorter chunks would outlast the session on heartbeats alone (each chunk's commit
        // refreshes it too, but a commit may be dropped or held back). kafkajs sends one at most
        // every heartbeatInterval; a rebalance it reports ends the batch, as a step's does.
        await payload.heartbeat();
        const started = performance.now();
        const chunk = next ?? beginChunk(payload, messages.slice(start, start + batchSize));
        next = undefined;
        const ahead = await chunk.prepared;
        // Pipelined: while this chunk is decided and appended (PostgreSQL's work), the next one is
        // decoded, priced and its markers read (Node's). Only that stateless stage runs ahead:
        // the next chunk is decided only once this one's append has returned (processChunk is
        // awaited), on the states it left (per-balance order), and its offsets are committed only
        // after this chunk's (offsets in order, each after its own chunk's writes).
        const after = start + batchSize;
        if (after < messages.length && live()) next = beginChunk(payload, messages.slice(after, after + batchSize));
        if (await processChunk(payload, chunk, ahead, started)) return;
      }
    } catch (error) {
      // A rebalance seen by a heartbeat: this member must not commit the batch, and kafkajs must
      // see its own error to rejoin the group.
      if (error instanceof HeartbeatError) throw error.cause;
      if (error instanceof DeadLetterRefusedError && live()) return await holdPartition(payload, BigInt(error.offset), 'dead_letter_refused');
      if (!(error instanceof BatchAbandonedError || error instanceof DeadLetterRefusedError)) throw error;
      logger.info({ partition: payload.batch.partition, reason: error.message }, 'batch left uncommitted; it will be redelivered');
    } finally {
      // Bounded shutdown as before: nothing of this batch outlives eachBatch (stop() waits for it).
      // A stage left ahead ends soon: its heartbeat aborts it once the consumer stops or the batch
      // goes stale, and fails with the group's error on a rebalance; its outcome is dropped, its
      // messages redelivered to whoever owns them next.
      if (next !== undefined) await next.prepared;
      // kafkajs is stopping (ours or its own restart): it leaves the group once every eachBatch
      // returned, so what this member handed over is committed before that.
      if (!payload.isRunning()) await committer.drain();
    }
  }

  /** Read from the broker, so it shows a group that stopped consuming (consumerGroupLag.ts); only for metrics. */
  const metrics = options.metrics;
  const groupLag =
    metrics === undefined
      ? undefined
      : createConsumerGroupLag({
          kafka: options.kafka,
          groupId: options.groupId,
          topic,
          fromBeginning: options.fromBeginning,
          intervalMs: options.groupLagIntervalMs,
          logger,
          report: (partitions) => metrics.groupLagRead({ topic, partitions }),
        });

  const worker = createWorker('consumer', {
    async start(signal, fail) {
      failWorker = fail;
      const partitions = await requireTopics();
      // Two partitions at once by default (DEFAULT_PARTITIONS_CONCURRENTLY says why), fewer when
      // the topic has fewer; the others' batches wait for a free turn. kafkajs still hands each
      // partition's batches over one at a time, in offset order, and each batch commits only its
      // own partition's offset after its appends (processChunk), so per-customer order and the
      // commit-after-append guarantee hold per partition whatever the concurrency. A partition
      // stalled on an undecodable batch is paused (stalledPartitions.ts) and holds no turn.
      const concurrently = partitionsAtOnce(options.partitionsConsumedConcurrently, partitions);
      committer = createOffsetCommitter({ topic, logger });
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: options.fromBeginning });
      await supervised.run(
        {
          autoCommit: false,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: concurrently,
          // A batch that cannot be decoded stops its partition there, visibly (stalledPartitions.ts).
          eachBatch: stalls.guard(eachBatch),
        },
        signal,
      );
      await stateFlush.start();
      await groupLag?.start();
      logger.info({ topic, groupId: options.groupId, dlqTopic, partitionsConsumedConcurrently: concurrently }, 'usage consumer started');
    },

    async stop() {
      // disconnect() stops fetching, waits for the batches in hand (see eachBatch), leaves the
      // group and closes the connections. The producer goes last: those batches may dead-letter.
      // Every offset handed over is committed while this member still owns its partitions; from
      // here on the chunks in hand commit inline, before kafkajs leaves the group.
      await groupLag?.stop();
      // A run again still joining would fetch on after disconnect(): it ends first.
      await supervised.settled();
      await committer.close();
      try {
        await consumer.disconnect();
      } finally {
        await producer.disconnect();
        // No batch in hand any more: no partition is held again, and none of this member's is held now.
        for (const [timer, partition] of resumeTimers) {
          clearTimeout(timer);
          options.metrics?.partitionResumed?.({ topic, partition });
        }
        resumeTimers.clear();
      }
      // After disconnect: no batch is in hand, so every state behind is a committed one and none moves on.
      await stateFlush.stop();
      await flushAll();
      logger.info({ counters: counters.snapshot() }, 'usage consumer stopped');
    },
  });

  return Object.assign(worker, {
    counters: () => counters.snapshot(),
    stalledPartitions: () => stalls.list(),
  });
}

/**
 * The kafkajs consumer settings of a usage consumer with these options (the bench's ceilings take
 * them too, so they consume as Tally does): heartbeats three to a session, at most every 3 s.
 */
export function usageConsumerKafkaSettings(options: {
  readonly sessionTimeoutMs: number;
  readonly maxFetchBytes: number;
  readonly maxFetchBytesPerPartition: number;
}): Omit<ConsumerConfig, 'groupId'> {
  return {
    sessionTimeout: options.sessionTimeoutMs,
    heartbeatInterval: Math.min(3000, Math.floor(options.sessionTimeoutMs / 3)),
    allowAutoTopicCreation: false,
    // Bounded memory: what one fetch may bring, from a broker and from one partition. Fetched
    // messages are the consumer's largest transient allocation (issue 11 §6).
    maxBytes: options.maxFetchBytes,
    maxBytesPerPartition: options.maxFetchBytesPerPartition,
  };
}
