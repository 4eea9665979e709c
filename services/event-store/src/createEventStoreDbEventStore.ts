import { createHash, randomUUID } from 'node:crypto';
import {
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  jsonEvent,
  NO_STREAM,
  ErrorType,
  START,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type Position,
  type ReadPosition,
  type ReadRevision,
  type ResolvedEvent,
  type StreamingRead,
} from '@eventstore/db-client';
import { createBackoff } from '@tally/runtime';
import type { Logger } from 'pino';
import { checkEventId, checkMaxCount, markerHashes, validateAppendRequests, type AppendPayload } from './appendValidation';
import {
  DuplicateEventIdError,
  EventStoreContendedError,
  EventStoreStreamDeletedError,
  EventStoreUnavailableError,
  InvalidEventStoreRequestError,
  MarkerAlreadyRecordedError,
  StoredWithoutMarkerError,
  StreamRevisionMismatchError,
  WrongExpectedRevisionError,
  type RevisionConflict,
} from './errors';
import type { AppendRequest, AppendResult, EventStore, JsonObject, ReadAllOptions, ReadStreamOptions, RecordedEvent } from './eventStore';
import { parseExpectedRevision } from './expectedRevision';
import { startSubscription } from './startSubscription';
import { createSubscriptionRegistry } from './subscriptionRegistry';

/**
 * The event store port over EventStoreDB 22.6+ or KurrentDB, through @eventstore/db-client: the
 * only module that knows that library. README, "EventStoreDB as the event store", says the same
 * as the comments here for operators.
 *
 * EventStoreDB appends to one stream atomically, never to several, and deduplicates event ids
 * only within a stream at a known revision; the port promises more (appendMany all or nothing,
 * with its markers; ids unique across streams; appendExclusively). So every write goes through
 * one journal stream, as PostgreSQL's append_events goes through one lock:
 *
 * 1. settle: the journal's last entry is applied (idempotently, see 4) if this process has not
 *    seen it applied. Entry n+1 is only ever written by a writer that settled entry n, so every
 *    entry before the last is applied already.
 * 2. check: markers, event ids (through one index stream per stored event id) and expected
 *    revisions are checked against the streams as they are after every journal entry so far,
 *    exactly as append_events checks them (same outcomes, same errors).
 * 3. commit: the events are staged in a batch stream of their own (invisible: no reader looks
 *    there until an entry names it), once a call (again only if a new round plans other events),
 *    then one small entry naming the batch, each stream's revision before it and a digest of the
 *    event ids is appended to the journal with the journal revision read in 1. That append is
 *    the commit point: it fails if another writer committed since step 1; after a backoff the
 *    call commits at the new revision if the entries that got in touch none of its streams,
 *    markers or ids (stillChecked), else starts again from 1; after MAX_COMMIT_ROUNDS lost
 *    rounds it fails, retriably (EventStoreContendedError), never trying for ever.
 *    Staging first means a committed entry always fits the server's limits (what did not fit
 *    failed before the commit).
 * 4. apply: each stream's events are appended with the exact revision the entry recorded, then
 *    the id-index and marker streams (expected revision no_stream), all with deterministic event
 *    ids. EventStoreDB treats a repeat of events at a known revision as idempotent, so applying
 *    an entry twice (a crash between two streams' appends, then a settle by anyone) writes each
 *    event once. A batch that is gone (removed once applied) is rebuilt from the streams, when
 *    they hold the entry's events (the digest says so). Every read settles first, so a read
 *    never sees an entry committed before it started half applied; an entry committed while it
 *    runs may show in part (some of its streams written, not yet others), as it would to a
 *    subscriber, which delivers the rest on its next read (it never skips a position).
 *
 * Exactly once for the metering consumer: its charges and markers are one journal entry. A crash
 * between two streams' appends leaves a committed entry that the next settle (the next read or
 * append by any process) completes; the redelivered usage then finds its markers recorded and is
 * not metered again. A crash before the journal append leaves only an orphaned batch stream.
 *
 * Positions: a Tally position is the event's commit position in the transaction log ($all).
 * Tally never writes explicit transactions (the gRPC API has none), and for every other event
 * commit and prepare positions are equal, so the one number says it all and orders events as
 * $all does. Byte offsets: far below 2^63, so PostgreSQL's bigint checkpoints hold them.
 * Servers older than 22.6 do not report positions on stream reads; they are refused.
 */
/** The calls of the client the adapter makes: a test can stand a model of the server in for it. */
export type EventStoreDbClient = Pick<EventStoreDBClient, 'appendToStream' | 'readStream' | 'readAll' | 'subscribeToAll' | 'dispose'>;

interface EventStoreDbEventStoreOptions {
  /** `esdb://host:2113?tls=false` or `esdb+discover://...` (KurrentDB servers take them too): see the client's docs. */
  readonly connectionString: string;
  /** Instead of a client made from the connection string (tests: a model of the server). */
  readonly client?: EventStoreDbClient;
  readonly logger: Logger;
  /** Longest delay before a live subscription notices an append whose wake-up was lost. */
  readonly pollIntervalMs?: number;
  readonly retryInitialDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /**
   * Prefix of the adapter's own streams (journal, batches, id index, markers); a caller's stream
   * may not start with it, and reads of $all leave them out. A distinct prefix gives a test its
   * own journal on a shared server.
   */
  readonly internalPrefix?: string;
  /**
   * What a round compares of the batch an earlier round staged and the events it plans now;
   * default batchDigest (SHA-256 of their JSON). A test's seam: it counts the calls.
   */
  readonly batchDigest?: (events: readonly StagedEvent[]) => string;
}

const DEFAULT_INTERNAL_PREFIX = 'tally-store.';
const DEFAULT_MAX_PAGE_EVENTS = 10_000;
/** Reads and writes in flight at once for one call (the client multiplexes them over HTTP/2). */
const CONCURRENCY = 64;
/** Below the server's default 1 MiB MaxAppendSize, with room for the envelope of each event. */
const MAX_APPEND_BYTES = 768 * 1024;
/**
 * The largest consumer chunk a deployment on EventStoreDB may configure: a chunk's journal entry
 * names each stream it writes (about 90 bytes) and each marker (about 35), and must fit
 * MAX_APPEND_BYTES; some 6,000 usage events on distinct balances do, so 5,000 leaves room for
 * longer balance ids and the warnings a chunk adds. Checked at start, so a chunk is never refused.
 */
export const EVENTSTOREDB_MAX_CONSUMER_BATCH_SIZE = 5000;
const TRANSIENT_GRPC_CODES = new Set([1, 4, 8, 10, 14]);
/** Above this, a position cannot be a log offset: a server without positions on stream reads. */
const NO_POSITION = 2n ** 63n;

/** Entries committed by others that a lost race reads to see whether the call's check still holds. */
const MAX_RECHECKED_ENTRIES = 256;
/** Lost journal races one call takes before it fails, retriably. */
const MAX_COMMIT_ROUNDS = 12;
/** Between lost rounds: short, as the writer that won is done in a few round trips. */
const COMMIT_BACKOFF = { initialDelayMs: 20, maxDelayMs: 1000 };

interface JournalEntry {
  readonly batch: string;
  /** Events of the batch stream: the writes in order, each its events in order. */
  readonly batchEvents: number;
  /** Per stream written: its last revision before the entry (-1: no stream) and its event count. */
  readonly writes: readonly { readonly streamId: string; readonly after: string; readonly count: number }[];
  readonly markers: readonly string[];
  /**
   * idsDigest of the batch's event ids: with it, apply completes an entry whose batch is gone
   * from its streams' events. Absent in entries of earlier versions.
   */
  readonly ids?: string;
}

/** An event as staged in a batch stream, and as applied to its stream. */
export interface StagedEvent {
  readonly streamId: string;
  readonly id: string;
  readonly type: string;
  readonly data: JsonObject;
  readonly metadata: JsonObject;
}

/** A batch a round staged (or plans to), its events, and their digest once a later round compared them. */
interface Staging {
  readonly batch: string;
  readonly events: readonly StagedEvent[];
  digest?: string;
}

interface Indexed {
  readonly streamId: string;
  readonly revision: bigint;
}

type PlannedOutcome = { kind: 'write'; after: bigint } | { kind: 'idempotent'; last: RecordedEvent };

export function createEventStoreDbEventStore(options: EventStoreDbEventStoreOptions): EventStore {
  const logger = options.logger.child({ module: 'event-store', store: 'eventstoredb' });
  let client: EventStoreDbClient;
  try {
    client = options.client ?? EventStoreDBClient.connectionString(options.connectionString);
  } catch (error) {
    // The client's own words name what is wrong; the string itself may hold a password.
    throw new InvalidEventStoreRequestError(`TALLY_EVENTSTORE_CONNECTION_STRING is not a valid EventStoreDB connection string: ${(error as Error).message}`);
  }
  // Without throwing, a lost journal race would resolve like a commit: every other part of the
  // adapter relies on a failed append throwing (appendRaw checks `success` too, in case).
  if ((client as { throwOnAppendFailure?: unknown }).throwOnAppendFailure === false) {
    void client.dispose();
    throw new InvalidEventStoreRequestError(
      'TALLY_EVENTSTORE_CONNECTION_STRING sets throwOnAppendFailure=false; Tally needs failed appends to throw: remove the option',
    );
  }
  const prefix = options.internalPrefix ?? DEFAULT_INTERNAL_PREFIX;
  const digestOf = options.batchDigest ?? batchDigest;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) throw new InvalidEventStoreRequestError(`internalPrefix must be 1 to 64 of [A-Za-z0-9_.-]; got ${prefix}`);
  const journalStream = `${prefix}journal`;
  const batchStream = (id: string) => `${prefix}batch-${id}`;
  const indexStream = (eventId: string) => `${prefix}event-${eventId}`;
  const markerStream = (hash: string) => `${prefix}marker-${hash}`;
  const isTallyStream = (streamId: string) => !streamId.startsWith('$') && !streamId.startsWith(prefix);
  const timing = {
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    retryInitialDelayMs: options.retryInitialDelayMs ?? 100,
    retryMaxDelayMs: options.retryMaxDelayMs ?? 5000,
  };

  /** Every client call goes through here, so that a lost server is the one retriable error callers know. */
  const call = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw translateEsdbError(error);
    }
  };

  /** A stream's events from a revision, in one direction; a missing stream reads as empty. */
  const readRaw = (streamId: string, fromRevision: ReadRevision, direction: typeof FORWARDS | typeof BACKWARDS, maxCount: number) =>
    call(async () => {
      const read: StreamingRead<ResolvedEvent> = client.readStream(streamId, { fromRevision, direction, maxCount });
      const events: RecordedEvent[] = [];
      try {
        for await (const resolved of read) {
          if (resolved.event !== undefined) events.push(toRecordedEvent(resolved.event));
        }
      } catch (error) {
        if (errorType(error) === ErrorType.STREAM_NOT_FOUND) return [];
        throw error;
      }
      return events;
    });

  const lastEvent = async (streamId: string): Promise<RecordedEvent | undefined> => (await readRaw(streamId, END, BACKWARDS, 1))[0];

  /** Every append: a `{ success: false }` answer (a client not throwing on failure) is the wrong expected version it stands for. */
  const appendRaw = (streamId: string, events: Parameters<EventStoreDbClient['appendToStream']>[1], expectedRevision: bigint | typeof NO_STREAM) =>
    call(async () => {
      const result = await client.appendToStream(streamId, events, { expectedRevision });
      if (result.success === false) {
        throw Object.assign(new Error(`WrongExpectedVersion: ${streamId} expected ${String(expectedRevision)}`), { type: ErrorType.WRONG_EXPECTED_VERSION });
      }
      return result;
    });

  /** Appends with an exact expected revision; a repeat of what is stored there is idempotent. */
  const appendExact = async (streamId: string, after: bigint, events: readonly StagedEvent[]): Promise<void> => {
    const last = after + BigInt(events.length);
    try {
      const result = await appendRaw(
        streamId,
        events.map((event) => jsonEvent({ id: event.id, type: event.type, data: event.data, metadata: event.metadata })),
        after < 0n ? NO_STREAM : after,
      );
      if (result.nextExpectedRevision === last) return;
    } catch (error) {
      if (errorType(error) !== ErrorType.WRONG_EXPECTED_VERSION) throw error;
    }
    // A concurrent apply of the same entry (the journal admits no other writer to these
    // revisions), or a server that numbered them otherwise (a soft-deleted stream recreated
    // goes on from its old last revision): the events must be there, exactly, or the store no
    // longer matches its journal, and nothing further of the entry (its index) is written.
    const stored = await readRaw(streamId, after + 1n, FORWARDS, events.length);
    if (stored.length !== events.length || stored.some((event, i) => event.id !== events[i]!.id)) {
      const at = await lastEvent(streamId);
      if (at !== undefined && at.revision !== last && events.some((event) => event.id === at.id)) {
        throw new StreamRevisionMismatchError(streamId, last, at.revision);
      }
      throw new Error(`journal entry cannot be applied to ${streamId} after revision ${after}: the stream holds other events there`);
    }
    const misplaced = stored.findIndex((event, i) => event.revision !== after + 1n + BigInt(i));
    if (misplaced >= 0) throw new StreamRevisionMismatchError(streamId, after + 1n + BigInt(misplaced), stored[misplaced]!.revision);
  };

  /** Runs `work` over the items, CONCURRENCY at a time. */
  const eachLimited = async <T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> => {
    const results: R[] = [];
    for (let start = 0; start < items.length; start += CONCURRENCY) {
      results.push(...(await Promise.all(items.slice(start, start + CONCURRENCY).map(work))));
    }
    return results;
  };

  const readIndex = async (eventId: string): Promise<Indexed | undefined> => {
    const [entry] = await readRaw(indexStream(eventId), START, FORWARDS, 1);
    return entry === undefined ? undefined : { streamId: String(entry.data.streamId), revision: BigInt(String(entry.data.revision)) };
  };

  /** The marker hashes among these whose stream exists. */
  const recordedMarkers = async (hashes: readonly string[]): Promise<string[]> =>
    (await eachLimited(hashes, async (hash) => ((await readRaw(markerStream(hash), START, FORWARDS, 1)).length > 0 ? hash : undefined))).filter(
      (hash): hash is string => hash !== undefined,
    );

  // --- the journal ---------------------------------------------------------------------------

  /** Highest journal revision this process knows to be applied; -1: none. */
  let appliedThrough = -1n;
  let settling: { revision: bigint; done: Promise<void> } | undefined;

  /**
   * The entry's events from its streams, when its batch is gone (removed after it was applied):
   * only if every stream holds exactly the entry's events at its revisions (the ids' digest).
   */
  const fromStreams = async (entry: JournalEntry): Promise<StagedEvent[] | undefined> => {
    if (entry.ids === undefined) return undefined;
    const read = await eachLimited(entry.writes, (write) => readRaw(write.streamId, BigInt(write.after) + 1n, FORWARDS, write.count));
    const events = read.flatMap((stored, i) =>
      stored.map((event, j): StagedEvent | undefined =>
        event.revision === BigInt(entry.writes[i]!.after) + 1n + BigInt(j) ? { streamId: event.streamId, id: event.id, type: event.type, data: event.data, metadata: event.metadata } : undefined,
      ),
    );
    const complete = events.filter((event): event is StagedEvent => event !== undefined);
    return complete.length === entry.batchEvents && idsDigest(complete) === entry.ids ? complete : undefined;
  };

  const apply = async (entry: JournalEntry): Promise<void> => {
    // A markers-only entry staged nothing (and a read of 0 events is not a read the server takes).
    let staged: StagedEvent[] =
      entry.batchEvents === 0 ? [] : (await readRaw(batchStream(entry.batch), START, FORWARDS, entry.batchEvents)).map((event) => event.data as unknown as StagedEvent);
    if (staged.length !== entry.batchEvents) {
      const rebuilt = await fromStreams(entry);
      if (rebuilt === undefined) {
        throw new Error(
          `journal batch ${entry.batch} holds ${staged.length} of its ${entry.batchEvents} events, and its streams do not hold them all: the entry cannot be completed (a batch removed before its entry was applied?)`,
        );
      }
      staged = rebuilt;
    }
    let offset = 0;
    const indexed: { eventId: string; streamId: string; revision: bigint }[] = [];
    // Streams in request order, each in chunks under the server's append limit: positions follow
    // request order, then event order, as on PostgreSQL.
    for (const write of entry.writes) {
      const events = staged.slice(offset, offset + write.count);
      offset += write.count;
      let after = BigInt(write.after);
      for (const chunk of chunksBySize(events)) {
        await appendExact(write.streamId, after, chunk);
        after += BigInt(chunk.length);
      }
      events.forEach((event, i) => indexed.push({ eventId: event.id, streamId: write.streamId, revision: BigInt(write.after) + 1n + BigInt(i) }));
    }
    await eachLimited(indexed, (item) =>
      appendExact(indexStream(item.eventId), -1n, [
        { streamId: item.streamId, id: derivedUuid('index', item.eventId), type: 'EventStored', data: { streamId: item.streamId, revision: item.revision.toString() }, metadata: {} },
      ]),
    );
    await eachLimited(entry.markers, (hash) =>
      appendExact(markerStream(hash), -1n, [{ streamId: '', id: derivedUuid('marker', hash), type: 'InputConsumed', data: { hash }, metadata: {} }]),
    );
  };

  const journalRevision = async (): Promise<bigint> => (await readRaw(journalStream, END, BACKWARDS, 1))[0]?.revision ?? -1n;

  /** Applies the journal's last entry unless known applied; returns the journal's last revision (-1: empty). */
  const settle = async (): Promise<bigint> => {
    const [tail] = await readRaw(journalStream, END, BACKWARDS, 1);
    if (tail === undefined) return -1n;
    if (tail.revision <= appliedThrough) return tail.revision;
    if (settling?.revision !== tail.revision) {
      const done = apply(tail.data as unknown as JournalEntry).then(() => {
        if (tail.revision > appliedThrough) appliedThrough = tail.revision;
      });
      settling = { revision: tail.revision, done };
      done.catch(() => undefined).finally(() => {
        if (settling?.done === done) settling = undefined;
      });
    }
    await settling.done;
    return tail.revision;
  };

  const commitBackoff = createBackoff(COMMIT_BACKOFF);

  /**
   * After a lost race: the journal's new last revision, settled, if the entries committed since
   * `journal` touch none of the call's streams, markers or event ids, so that its check still
   * holds as it was; undefined when the call must check again. This is what lets a big call
   * commit between small writes to other streams: checking it again takes longer than they do.
   */
  const stillChecked = async (journal: bigint, streamIds: ReadonlySet<string>, hashes: ReadonlySet<string>, ids: ReadonlySet<string>): Promise<bigint | undefined> => {
    // Settling and reading what got in at once: this round must be short to be won.
    const [tail, read] = await Promise.all([
      settle(),
      readRaw(journalStream, journal + 1n, FORWARDS, MAX_RECHECKED_ENTRIES).then(async (recorded) => {
        const entries = recorded.map((event) => event.data as unknown as JournalEntry);
        const batches = await eachLimited(entries, (entry) => (entry.batchEvents === 0 ? Promise.resolve([]) : readRaw(batchStream(entry.batch), START, FORWARDS, entry.batchEvents)));
        return { first: recorded[0]?.revision, entries, batches };
      }),
    ]);
    const moved = Number(tail - journal);
    // Fewer entries read than got in: too many, or the journal was truncated ($maxCount); what got in is unknown.
    if (moved < 1 || read.first !== journal + 1n || read.entries.length < moved) return undefined;
    const entries = read.entries.slice(0, moved);
    const batches = read.batches.slice(0, moved);
    if (entries.some((entry) => entry.writes.some((write) => streamIds.has(write.streamId)) || entry.markers.some((hash) => hashes.has(hash)))) return undefined;
    const intact = batches.every((batch, i) => batch.length === entries[i]!.batchEvents);
    return intact && !batches.some((batch) => batch.some((staged) => ids.has(String(staged.data.id).toLowerCase()))) ? tail : undefined;
  };

  /** Whether two rounds' batches hold the same events; a count that differs says so without hashing. */
  const sameEvents = (staged: Staging, planned: Staging): boolean =>
    staged.events.length === planned.events.length && (staged.digest ??= digestOf(staged.events)) === (planned.digest ??= digestOf(planned.events));

  /** Steps 2 and 3 of the class comment, again from step 1 whenever another writer commits first. */
  const appendOn = async (requests: readonly AppendRequest[], markers: readonly string[], beforeCheck?: () => Promise<readonly AppendRequest[]>): Promise<AppendResult[]> => {
    /** The batch staged by an earlier round, and what it holds: a round that plans the same events reuses it. */
    let staging: Staging | undefined;
    let lost = 0;
    const loseRound = async (journal: bigint): Promise<void> => {
      lost += 1;
      if (lost >= MAX_COMMIT_ROUNDS) throw new EventStoreContendedError(lost);
      logger.debug({ journal, lost }, 'another writer committed first; checking again after a backoff');
      await commitBackoff.wait(lost);
    };
    for (;;) {
      const journal = await settle();
      const current = beforeCheck === undefined ? requests : await beforeCheck();
      const payload = validateAppendRequests(current);
      for (const request of payload) {
        if (!isTallyStream(request.streamId)) throw new InvalidEventStoreRequestError(`stream ${request.streamId} is reserved (system streams and ${prefix}*)`);
      }
      if (payload.length === 0 && markers.length === 0) return [];
      const hashes = markerHashes(markers);
      const recorded = await recordedMarkers([...hashes.keys()]);
      if (recorded.length > 0) throw new MarkerAlreadyRecordedError(recorded.map((hash) => hashes.get(hash)!));
      let outcomes: PlannedOutcome[];
      try {
        outcomes = await plan(payload, hashes.size > 0);
      } catch (error) {
        // appendExclusively's work decided on the streams as of `journal`: a conflict with an
        // entry committed since is not its mistake, and it decides again (it must not lose).
        if (beforeCheck === undefined || !(error instanceof WrongExpectedRevisionError) || (await journalRevision()) === journal) throw error;
        await loseRound(journal);
        continue;
      }
      const writes = payload.flatMap((request, i) => {
        const outcome = outcomes[i]!;
        return outcome.kind === 'write' ? [{ request, after: outcome.after }] : [];
      });
      if (writes.length > 0 || hashes.size > 0) {
        const staged = writes.flatMap(({ request }) =>
          request.events.map((event): StagedEvent => ({ streamId: request.streamId, id: event.id, type: event.type, data: event.data, metadata: event.metadata })),
        );
        const planned: Staging = { batch: randomUUID(), events: staged };
        // Only a round after a lost one has a staged batch to compare, so the first (and usually
        // only) round hashes nothing: a 5,000-event chunk is 2.5 MB of JSON. The digests are kept,
        // so each batch is hashed once however many rounds compare it.
        const reused = staging !== undefined && sameEvents(staging, planned) ? staging : undefined;
        const batch = (reused ?? planned).batch;
        const entry: JournalEntry = {
          batch,
          batchEvents: staged.length,
          writes: writes.map(({ request, after: before }) => ({ streamId: request.streamId, after: before.toString(), count: request.events.length })),
          markers: [...hashes.keys()],
          ids: idsDigest(staged),
        };
        // The journal append must fit the server's limit as the events' chunks do: refused here,
        // before anything is staged, rather than by the server after.
        const entryBytes = Buffer.byteLength(JSON.stringify(entry));
        if (entryBytes > MAX_APPEND_BYTES) {
          throw new InvalidEventStoreRequestError(
            `the call's journal entry (${writes.length} streams, ${hashes.size} markers) takes ${entryBytes} bytes, over the ${MAX_APPEND_BYTES} of one append: ` +
              'split the call (the metering consumer: a smaller TALLY_CONSUMER_BATCH_SIZE, see README, "EventStoreDB as the event store")',
          );
        }
        if (reused === undefined) {
          let after = -1n;
          for (const chunk of chunksBySize(staged)) {
            await appendExact(batchStream(batch), after, chunk.map((event) => ({ ...event, id: randomUUID(), type: 'StagedEvent', data: event as unknown as JsonObject, metadata: {} })));
            after += BigInt(chunk.length);
          }
          staging = planned;
        }
        // appendExclusively's work read streams this cannot know: it always decides again.
        const touched =
          beforeCheck === undefined
            ? { streamIds: new Set(payload.map((request) => request.streamId)), hashes: new Set(hashes.keys()), ids: new Set(payload.flatMap((request) => request.events.map((event) => event.id.toLowerCase()))) }
            : undefined;
        let at: bigint | undefined = journal;
        while (at !== undefined) {
          try {
            await appendRaw(journalStream, jsonEvent({ id: randomUUID(), type: 'Committed', data: entry as unknown as JsonObject }), at < 0n ? NO_STREAM : at);
            break;
          } catch (error) {
            if (errorType(error) !== ErrorType.WRONG_EXPECTED_VERSION) throw error;
            await loseRound(at);
            at = touched === undefined ? undefined : await stillChecked(at, touched.streamIds, touched.hashes, touched.ids);
          }
        }
        if (at === undefined) continue;
        // Ours is the last entry now: applying it is settling it.
        await settle();
      }
      return Promise.all(
        payload.map(async (request, i): Promise<AppendResult> => {
          const outcome = outcomes[i]!;
          if (outcome.kind === 'idempotent') {
            return { streamId: request.streamId, nextExpectedRevision: outcome.last.revision, position: outcome.last.position, idempotent: true };
          }
          const last = outcome.after + BigInt(request.events.length);
          const [event] = await readRaw(request.streamId, last, FORWARDS, 1);
          return { streamId: request.streamId, nextExpectedRevision: last, position: event!.position, idempotent: false };
        }),
      );
    }
  };

  /**
   * append_events' checks (010_set_based_append.sql): foreign ids, idempotent repeats, conflicts;
   * with markers, any id stored already (023_marked_append_refuses_stored.sql).
   */
  const plan = async (payload: readonly AppendPayload[], marked: boolean): Promise<PlannedOutcome[]> => {
    const ids = payload.flatMap((request) => request.events.map((event) => event.id));
    const found = new Map<string, Indexed>();
    (await eachLimited(ids, async (id) => [id, await readIndex(id)] as const)).forEach(([id, indexed]) => indexed && found.set(id, indexed));
    if (marked && found.size > 0) throw new StoredWithoutMarkerError([...found.keys()]);
    const tails = await eachLimited(payload, (request) => lastEvent(request.streamId));
    const foreign: { streamId: string; eventIds: string[] }[] = [];
    const conflicts: RevisionConflict[] = [];
    const outcomes = payload.map((request, i): PlannedOutcome => {
      const tail = tails[i];
      const same = request.events.filter((event) => found.get(event.id)?.streamId === request.streamId).length;
      const elsewhere = request.events.filter((event) => found.has(event.id) && found.get(event.id)!.streamId !== request.streamId).map((event) => event.id);
      if (elsewhere.length > 0) foreign.push({ streamId: request.streamId, eventIds: elsewhere });
      if (same === request.events.length && tail !== undefined) return { kind: 'idempotent', last: tail };
      const expected = parseExpectedRevision(request.expectedRevision);
      const holds =
        same === 0 &&
        (expected === 'any' ||
          (expected === 'no_stream' && tail === undefined) ||
          (expected === 'stream_exists' && tail !== undefined) ||
          (typeof expected === 'bigint' && tail !== undefined && tail.revision === expected));
      if (!holds) conflicts.push({ streamId: request.streamId, expected, actual: tail?.revision ?? 'no_stream' });
      return { kind: 'write', after: tail?.revision ?? -1n };
    });
    if (foreign.length > 0) {
      throw DuplicateEventIdError.storedInOtherStreams(foreign);
    }
    if (conflicts.length > 0) throw new WrongExpectedRevisionError(conflicts as [RevisionConflict, ...RevisionConflict[]]);
    return outcomes;
  };

  // --- reads -----------------------------------------------------------------------------------

  const readStream = async (streamId: string, { direction = 'forwards', fromRevision, maxCount }: ReadStreamOptions = {}, settled = false): Promise<RecordedEvent[]> => {
    if (fromRevision !== undefined && fromRevision < 0n) throw new InvalidEventStoreRequestError(`fromRevision must not be negative; got ${fromRevision}`);
    const limit = checkMaxCount(maxCount);
    if (limit === 0) return [];
    if (!settled) await settle();
    return readRaw(
      streamId,
      fromRevision ?? (direction === 'forwards' ? START : END),
      direction === 'forwards' ? FORWARDS : BACKWARDS,
      limit ?? Number.MAX_SAFE_INTEGER,
    );
  };

  /** Records of the server's own ($-typed: tombstones) skipped in $all by this process, each logged once. */
  const skippedRecords = new Set<bigint>();

  /** Tally's events of $all in one direction from a position, up to maxCount of them. */
  const scanAll = (fromPosition: ReadPosition, direction: typeof FORWARDS | typeof BACKWARDS, keep: (event: RecordedEvent) => boolean, maxCount: number) =>
    call(async () => {
      const events: RecordedEvent[] = [];
      if (maxCount === 0) return events;
      const read: StreamingRead<AllStreamResolvedEvent> = client.readAll({ fromPosition, direction });
      try {
        for await (const resolved of read) {
          const recorded = resolved.event;
          if (recorded === undefined || !isTallyStream(recorded.streamId)) continue;
          // The server's bookkeeping in a Tally stream (a `$streamDeleted` tombstone): not an
          // event of the stream, and not JSON; failing the page on it would stop every subscriber.
          if (recorded.type.startsWith('$')) {
            const at = recorded.position?.commit;
            if (at !== undefined && !skippedRecords.has(at)) {
              skippedRecords.add(at);
              logger.warn(
                { streamId: recorded.streamId, type: recorded.type, position: at.toString(), skipped: skippedRecords.size },
                `skipping the server's ${recorded.type} record of ${recorded.streamId} in $all`,
              );
            }
            continue;
          }
          const event = toRecordedEvent(recorded);
          if (!keep(event)) continue;
          events.push(event);
          if (events.length >= maxCount) break;
        }
      } finally {
        await read.cancel().catch(() => undefined);
      }
      return events;
    });

  const readAll = async ({ after = 0n, maxCount }: ReadAllOptions = {}): Promise<RecordedEvent[]> => {
    const limit = checkMaxCount(maxCount) ?? Number.MAX_SAFE_INTEGER;
    // Settled first, as every read: a subscriber (projector, relay, webhooks) or a replay must not
    // see one balance of an entry charged and another not for as long as no process reads a
    // stream or appends (a quiet system after a crash between two streams' appends).
    await settle();
    // A Tally position is an event's commit (= prepare) position, so it is a valid place to start;
    // $all reads include their start, subscriptions' checkpoints exclude it: drop it here.
    return scanAll(after <= 0n ? START : { commit: after, prepare: after }, FORWARDS, (event) => event.position > after, limit);
  };

  // --- live wake-ups for subscriptions ----------------------------------------------------------

  const wakes = new Set<() => void>();
  let live: AllStreamSubscription | undefined;
  const ensureLive = async (): Promise<void> => {
    if (live !== undefined) return;
    // Only a signal that something was appended (like PostgreSQL's NOTIFY): the subscription loop
    // re-reads $all from its own checkpoint, so a lost wake-up costs at most the poll interval.
    const subscription = client.subscribeToAll({
      fromPosition: END,
      filter: streamNameFilter({ regex: `^(?!\\$|${escapeRegex(prefix)})` }),
    });
    subscription.on('data', () => wakes.forEach((wake) => wake()));
    subscription.on('error', (error) => {
      logger.warn({ err: error }, 'live $all subscription failed; polling until it is back');
      if (live === subscription) live = undefined;
    });
    subscription.on('end', () => {
      if (live === subscription) live = undefined;
    });
    live = subscription;
  };

  const subscriptions = createSubscriptionRegistry();

  const store: EventStore = {
    async appendToStream(streamId, events, { expectedRevision }) {
      const [result] = await appendOn([{ streamId, events, expectedRevision }], []);
      return result!;
    },

    appendMany: (requests, appendOptions = {}) => appendOn(requests, appendOptions.markers ?? []),

    async readMarkers(markers) {
      if (markers.length === 0) return new Set();
      const hashes = markerHashes(markers);
      await settle();
      return new Set((await recordedMarkers([...hashes.keys()])).map((hash) => hashes.get(hash)!));
    },

    // EventStoreDB reads markers and events by separate requests anyway: the two at once.
    async readAppendTraces(markers, eventIds) {
      const [found, events] = await Promise.all([store.readMarkers(markers), store.readEventsById(eventIds)]);
      return { markers: found, events };
    },

    readStream: (streamId, readOptions) => readStream(streamId, readOptions),

    /**
     * EventStoreDB has no lock to hold the other appenders back, so this is optimistic where
     * PostgreSQL's is pessimistic: `work` reads the streams as of the journal's last entry, and
     * its append commits only if no other entry got in meanwhile; else `work` runs again on the
     * new state, never failing with a conflict it did not cause. The promise kept is the same
     * (its expected revisions hold when it commits), but `work` may run more than once, and
     * under a storm of writers it may take many rounds, up to MAX_COMMIT_ROUNDS lost ones
     * (then EventStoreContendedError, retriable).
     */
    async appendExclusively(work, exclusiveOptions = {}) {
      let value: unknown;
      const results = await appendOn([], exclusiveOptions.markers ?? [], async () => {
        const decided = await work({ readStream: (streamId, readOptions) => readStream(streamId, readOptions, true) });
        value = decided.value;
        return decided.requests;
      });
      return { results, value: value as never };
    },

    async readStreams(streamIds) {
      await settle();
      const unique = [...new Set(streamIds)];
      const read = await eachLimited(unique, (streamId) => readStream(streamId, {}, true));
      const streams = new Map<string, RecordedEvent[]>(streamIds.map((id) => [id, []]));
      unique.forEach((streamId, i) => streams.set(streamId, read[i]!));
      return streams;
    },

    async *readStreamsPaged(streamIds, { maxPageEvents = DEFAULT_MAX_PAGE_EVENTS, fromRevisions } = {}) {
      if (!Number.isSafeInteger(maxPageEvents) || maxPageEvents < 1) {
        throw new InvalidEventStoreRequestError(`maxPageEvents must be a positive integer; got ${maxPageEvents}`);
      }
      if (streamIds.length === 0) return;
      await settle();
      // Streams one after another, each from its start (or its fromRevisions entry) in reads no longer than what the page
      // still has room for: every page at most maxPageEvents, each stream contiguous.
      let page: RecordedEvent[] = [];
      for (const streamId of [...new Set(streamIds)]) {
        for (let from = fromRevisions?.get(streamId) ?? 0n; ; ) {
          const room = maxPageEvents - page.length;
          const read = await readRaw(streamId, from, FORWARDS, room);
          page.push(...read);
          if (page.length >= maxPageEvents) {
            yield page;
            page = [];
          }
          if (read.length < room) break;
          from = read[read.length - 1]!.revision + 1n;
        }
      }
      if (page.length > 0) yield page;
    },

    async readEventsById(eventIds) {
      if (eventIds.length === 0) return [];
      const ids = [...new Set(eventIds.map((id) => checkEventId(id)))];
      await settle();
      const found = await eachLimited(ids, async (id) => {
        const indexed = await readIndex(id);
        return indexed === undefined ? undefined : (await readRaw(indexed.streamId, indexed.revision, FORWARDS, 1))[0];
      });
      return found.filter((event): event is RecordedEvent => event !== undefined).sort((a, b) => (a.position < b.position ? -1 : 1));
    },

    readAll,
    // Nothing to skip: EventStoreDB hands out whole events, each of which is a StoredPayload.
    readAllPayloads: readAll,

    async headPosition() {
      await settle();
      const [last] = await scanAll(END, BACKWARDS, () => true, 1);
      return last?.position ?? 0n;
    },

    subscribeToAll(subscribeOptions) {
      const subscription = startSubscription(
        {
          readAll: (after, maxCount) => readAll({ after, maxCount }),
          ensureListening: () => ensureLive(),
          onAppended: (wake) => {
            wakes.add(wake);
            return () => wakes.delete(wake);
          },
        },
        timing,
        subscribeOptions,
        logger.child({ subscription: subscribeOptions.after?.toString() ?? 'start' }),
      );
      return subscriptions.track(subscription);
    },

    /** Stops this store's subscriptions and closes its client: the adapter made it, the adapter ends it. */
    async close() {
      await subscriptions.stopAll();
      await live?.unsubscribe().catch(() => undefined);
      live = undefined;
      await client.dispose();
    },
  };
  return store;
}

function toRecordedEvent(event: NonNullable<ResolvedEvent['event']>): RecordedEvent {
  const position = eventPosition(event.position, event.streamId, event.revision);
  if (!event.isJson || typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)) {
    throw new Error(`event ${event.id} (${event.type}) of ${event.streamId} at revision ${event.revision} is not a JSON object; Tally writes nothing else there (corrupt data?)`);
  }
  const metadata = event.metadata;
  return {
    id: event.id.toLowerCase(),
    type: event.type,
    streamId: event.streamId,
    revision: event.revision,
    position,
    data: event.data as JsonObject,
    metadata: metadata !== undefined && typeof metadata === 'object' && !(metadata instanceof Uint8Array) && !Array.isArray(metadata) ? (metadata as JsonObject) : {},
    recordedAt: event.created,
  };
}

/**
 * The commit position: each event has its own (events of one append included), in $all order.
 * For events not written in explicit transactions (all of Tally's) it equals the prepare
 * position, which is why readAll can start at { commit: p, prepare: p }.
 */
function eventPosition(position: Position | undefined, streamId: string, revision: bigint): bigint {
  if (position === undefined || position.commit >= NO_POSITION) {
    throw new Error(`EventStoreDB gave no log position for ${streamId}@${revision}: Tally needs EventStoreDB 22.6 or later (positions on stream reads)`);
  }
  return position.commit;
}

/**
 * Connection failures are retriable, as on PostgreSQL; an append whose answer was lost may have
 * committed, and retrying it is safe (the retry settles it and finds its ids stored).
 */
export function translateEsdbError(error: unknown): unknown {
  const type = errorType(error);
  if (type === 'unavailable' || type === 'deadline-exceeded' || type === 'timeout' || type === 'not-leader' || type === 'cancelled') {
    return new EventStoreUnavailableError(error);
  }
  // A discovery connection string (esdb+discover://) whose gossip never answered.
  if (error instanceof Error && /^Failed to discover/.test(error.message)) return new EventStoreUnavailableError(error);
  // gRPC statuses that say "not now" whatever the client made of them (an `unknown` error of a
  // server restarting, say): CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code === 'number' && TRANSIENT_GRPC_CODES.has(code)) return new EventStoreUnavailableError(error);
  if (type === 'stream-deleted') {
    const streamName = (error as { streamName?: unknown }).streamName;
    return new EventStoreStreamDeletedError(typeof streamName === 'string' ? streamName : 'unknown', { cause: error });
  }
  if (type === 'maximum-append-size-exceeded') {
    return new InvalidEventStoreRequestError(`append larger than the server's MaxAppendSize (EVENTSTORE_MAX_APPEND_SIZE): ${(error as Error).message}`, { cause: error });
  }
  return error;
}

/** The client's errors say what they are in `type` (its ErrorType). */
function errorType(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { type?: unknown }).type : undefined;
}

/** Chunks of consecutive events, each under MAX_APPEND_BYTES by its JSON size (one event at least). */
function chunksBySize<T extends { readonly data: JsonObject; readonly metadata: JsonObject }>(events: readonly T[]): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const event of events) {
    const size = Buffer.byteLength(JSON.stringify(event.data)) + Buffer.byteLength(JSON.stringify(event.metadata)) + 256;
    if (chunk.length > 0 && bytes + size > MAX_APPEND_BYTES) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(event);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** A digest of a batch's events, all of them (2.5 MB of JSON for a chunk of 5,000 usage events). */
function batchDigest(events: readonly StagedEvent[]): string {
  return createHash('sha256').update(JSON.stringify(events)).digest('hex');
}

/** A digest of events' ids in order: what a journal entry records of its batch (64 characters, however many events). */
function idsDigest(events: readonly { readonly id: string }[]): string {
  return createHash('sha256')
    .update(events.map((event) => event.id.toLowerCase()).join('\n'))
    .digest('hex');
}

/**
 * A UUID derived from what it names (SHA-256, version 8 bits set): the same bookkeeping event gets
 * the same id whoever applies a journal entry, so a second apply is EventStoreDB's idempotent repeat.
 */
function derivedUuid(kind: string, name: string): string {
  const hex = createHash('sha256').update(`${kind}\u0000${name}`, 'utf8').digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
