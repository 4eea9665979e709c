/**
 * The event store port. It mirrors EventStoreDB's semantics (streams, expected revisions,
 * idempotent event ids, $all reads and catch-up subscriptions) so that an adapter over
 * `@eventstore/db-client` can implement it without changing a caller.
 *
 * Positions and revisions are bigint: they are counters that may pass 2^53.
 */

/** `any`: no check; `no_stream`: the stream must not exist; `stream_exists`: it must; n: its last revision must be n. */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | bigint;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface EventToAppend {
  /** A UUID. Appending an id that is already stored is idempotent: it never makes a second event. */
  readonly id: string;
  readonly type: string;
  readonly data: JsonObject;
  readonly metadata?: JsonObject;
}

/** What a fold needs of a stored event: its place in its stream and in the log, and its payload. */
export interface StoredPayload {
  readonly streamId: string;
  /** 0-based position of the event within its stream. */
  readonly revision: bigint;
  /** Position in the global log ($all). Strictly increasing in the order subscribers see events. */
  readonly position: bigint;
  readonly type: string;
  readonly data: JsonObject;
}

export interface RecordedEvent extends StoredPayload {
  readonly id: string;
  readonly metadata: JsonObject;
  readonly recordedAt: Date;
}

export interface AppendRequest {
  readonly streamId: string;
  readonly expectedRevision: ExpectedRevision;
  readonly events: readonly EventToAppend[];
}

export interface AppendResult {
  readonly streamId: string;
  /** The stream's last revision after the append: the expected revision for the next one. */
  readonly nextExpectedRevision: bigint;
  /** Global position of the stream's last event after the append. */
  readonly position: bigint;
  /** True when every event id was already stored, so nothing was written. */
  readonly idempotent: boolean;
}

export interface ReadStreamOptions {
  readonly direction?: 'forwards' | 'backwards';
  /** Inclusive. Forwards defaults to 0, backwards to the stream's end. */
  readonly fromRevision?: bigint;
  readonly maxCount?: number;
}

export interface ReadAllOptions {
  /** Exclusive: events strictly after this position. Defaults to the start. */
  readonly after?: bigint;
  readonly maxCount?: number;
}

export interface AppendManyOptions {
  /**
   * Records that the inputs these ids name were consumed, in the same transaction as the
   * events: the markers and the events are stored together or not at all, and a marker is kept
   * for ever. When any of them is already recorded nothing is written and the call fails with
   * MarkerAlreadyRecordedError (another writer consumed that input first: re-read with
   * readMarkers and decide again). With markers, an event of the call already stored is never
   * answered as idempotent: nothing is written and the call fails with StoredWithoutMarkerError
   * (an earlier run recorded no marker), so a writer with markers may append without reading
   * its earlier runs first. May be given with no requests, to record inputs that caused
   * no event. The metering consumer marks each usage event it meters (@tally/ledger's
   * meteredUsageMarker); a new kind of marker must be prefixed so that it cannot meet those.
   *
   * Every store must honour this atomically. One without multi-stream transactions cannot write
   * a marker stream beside the balance streams and keep the promise; it has to append the markers
   * and the events as one write to one stream with an expected revision, from which the balance
   * and marker streams are derived, or the consumer's record and its charges can disagree after a
   * crash. The EventStoreDB adapter does so: one journal entry per call, completed by whoever
   * reads or writes next (createEventStoreDbEventStore.ts).
   */
  readonly markers?: readonly string[];
}

export interface SubscribeToAllOptions {
  /** Exclusive checkpoint: delivery starts with the first event after it. */
  readonly after?: bigint;
  readonly batchSize?: number;
  /**
   * Called with consecutive events, in position order, never concurrently. The subscription
   * waits for the returned promise before it delivers more, so a handler that throws stops the
   * subscription (reported through onError) rather than skipping events.
   */
  readonly onEvents: (events: readonly RecordedEvent[]) => Promise<void>;
  readonly onError?: (error: unknown) => void;
  /** Called once whenever the subscription has caught up with the head (it then goes live). */
  readonly onCaughtUp?: (position: bigint) => void;
}

export interface Subscription {
  /** Stops delivering; resolves after the handler in progress (if any) has returned. */
  stop(): Promise<void>;
}

/** What readAppendTraces found. */
export interface AppendTraces {
  /** The recorded markers among those asked for. */
  readonly markers: Set<string>;
  /** The stored events among the ids asked for, in position order (as readEventsById). */
  readonly events: RecordedEvent[];
}

export interface EventStore {
  appendToStream(
    streamId: string,
    events: readonly EventToAppend[],
    options: { expectedRevision: ExpectedRevision },
  ): Promise<AppendResult>;
  /**
   * Appends to many streams atomically (one transaction, one round trip for the PostgreSQL
   * store): either every request is written or none is. A mismatched expected revision in any
   * request fails the whole call with WrongExpectedRevisionError naming the streams.
   */
  appendMany(requests: readonly AppendRequest[], options?: AppendManyOptions): Promise<AppendResult[]>;
  /** The markers among these that are recorded (see AppendManyOptions.markers). */
  readMarkers(markers: readonly string[]): Promise<Set<string>>;
  /**
   * readMarkers and readEventsById in one read, one round trip for the PostgreSQL store: what
   * earlier appends left of an input about to be appended (its markers, and events stored under
   * the ids it would write), for a writer that checks both before every append.
   */
  readAppendTraces(markers: readonly string[], eventIds: readonly string[]): Promise<AppendTraces>;
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /**
   * Runs `work` while every other append to this store waits, then appends the requests it
   * returns, in one transaction. `work` reads through `reader`, on the transaction's own
   * connection (a pool that other waiting callers exhausted cannot stall it); the streams cannot
   * move between those reads and the append, so an expected revision taken from them always
   * holds. It stalls every appender of the store while it runs: the fallback of a writer that
   * keeps losing optimistic races on a busy stream, never the normal path. Keep `work` short
   * (a tail read and a decision) and make it touch no other connection. `options.markers` are
   * recorded in the same transaction, as appendMany records them (the metering consumer's
   * batches go through the same command path, so its fallback carries them too).
   */
  appendExclusively<T>(
    work: (reader: Pick<EventStore, 'readStream'>) => Promise<{ readonly requests: readonly AppendRequest[]; readonly value: T }>,
    options?: AppendManyOptions,
  ): Promise<{ readonly results: AppendResult[]; readonly value: T }>;
  /**
   * Reads whole streams forwards, many at once; a missing stream maps to an empty array. Holds
   * every event of them in memory at once: to fold streams that may be long, use readStreamsPaged.
   */
  readStreams(streamIds: readonly string[]): Promise<Map<string, RecordedEvent[]>>;
  /**
   * The events of these streams as pages of about `maxPageEvents` (default 10,000) events, each
   * stream's events in revision order and contiguous (a stream longer than a page spans several
   * consecutive pages); missing streams yield nothing. For folding many streams, however long, in
   * bounded memory: each event's payload and places only (StoredPayload), so a store need not
   * read or decode what a fold never looks at (the PostgreSQL store skips the metadata, the
   * stream's header, the event's id and its time). `fromRevisions`: a stream listed there is read
   * from that revision (the tails after stored states, for a batch loader), the others from their
   * start; a stream with nothing from there yields nothing, and costs no read of events.
   */
  readStreamsPaged(
    streamIds: readonly string[],
    options?: { readonly maxPageEvents?: number; readonly fromRevisions?: ReadonlyMap<string, bigint> },
  ): AsyncIterable<StoredPayload[]>;
  /** The stored events among these ids (any stream), for idempotency checks. */
  readEventsById(eventIds: readonly string[]): Promise<RecordedEvent[]>;
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /**
   * The same page of the log as readAll, each event's payload and places only (StoredPayload),
   * for a fold over the whole log (a projection's rebuild): a store need not read or decode what
   * the fold never looks at, as in readStreamsPaged.
   */
  readAllPayloads(options?: ReadAllOptions): Promise<StoredPayload[]>;
  /** Position of the last event in the global log, 0n when the store is empty. */
  headPosition(): Promise<bigint>;
  subscribeToAll(options: SubscribeToAllOptions): Subscription;
  close(): Promise<void>;
}
