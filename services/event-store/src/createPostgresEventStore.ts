import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { LruCache } from '@tally/domain';
import { integerArrayLiteral, NotificationListener, rolledBack, textArrayLiteral, withClient } from '@tally/postgres';
import { checkEventId, checkMaxCount, markerHashes, validateAppendRequests, type AppendPayload } from './appendValidation';
import { InvalidEventStoreRequestError, MarkerAlreadyRecordedError, StoredWithoutMarkerError } from './errors';
import type {
  AppendManyOptions,
  AppendRequest,
  AppendResult,
  EventStore,
  JsonObject,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  StoredPayload,
} from './eventStore';
import { decodePayload, encodePayload, toEventShape, type EventShape } from './eventPayloadCodec';
import { groupStreamsByEvents } from './groupStreamsByEvents';
import { decodeStoredMetadata } from './storedMetadata';
import { reduceMetadata, StreamHeaders, type StreamHeader } from './streamHeaders';
import { sharedPageReads } from './sharedPageReads';
import { startSubscription } from './startSubscription';
import { createSubscriptionRegistry } from './subscriptionRegistry';
import { translateError } from './translateError';

interface PostgresEventStoreOptions {
  /** A pool whose search_path is the schema migrated with @tally/postgres. The caller owns (and ends) it. */
  readonly pool: Pool;
  readonly logger: Logger;
  /** LISTEN/NOTIFY channel for live subscriptions; a plain lower-case identifier. */
  readonly notifyChannel?: string;
  /** Longest delay before a live subscription notices an append whose notification was lost. */
  readonly pollIntervalMs?: number;
  readonly retryInitialDelayMs?: number;
  readonly retryMaxDelayMs?: number;
  /**
   * Stream headers kept, by number for reads and by name for reducing metadata before an append
   * (see streamHeaders.ts); 0 keeps none for appends (reads then keep one).
   */
  readonly maxStreamHeaders?: number;
}

/** The pool, or one client holding a transaction. */
type Queryable = Pick<Pool, 'query'>;

export const DEFAULT_NOTIFY_CHANNEL = 'tally_event_store';
const DEFAULT_MAX_PAGE_EVENTS = 10_000;
/** About half a kilobyte each: 20,000 balances' headers in some 10 MB of a consumer's heap. */
const DEFAULT_MAX_STREAM_HEADERS = 20_000;

/**
 * The compact ledger (migrations 017, 018): `event_log` rows as stored, no function of a row in
 * SQL. The stream's name and header come from `streams`, and the payload's shape from
 * `event_shapes`, each read once per process and kept (neither changes once stored); the payload
 * (shape and body) and the metadata (header, absent keys, differing keys: 017's
 * es_decode_metadata, storedMetadata.ts) are decoded here. Rebuilding the metadata in SQL took
 * most of a replay page's time in PostgreSQL (a sub-select and two jsonb values per row, and the
 * join to `streams` per row): 150 to 185 ms for 10,000 events against 6 to 8 ms without.
 */
const EVENT_COLUMNS = 'e.position, e.event_id, e.stream_no, e.revision, e.shape_no, e.body, e.meta_absent, e.meta, e.recorded_at';
/** For the reads that select by stream name; readAll needs no join. */
const EVENTS = 'event_log AS e JOIN streams AS s ON s.stream_no = e.stream_no';
/**
 * A page of one stream. The stream's number is looked up first (an InitPlan), so the page is a
 * range of the `(stream_no, revision)` index read in its order and stopped at the limit. Joined
 * to `streams` instead, the planner cannot tell the join yields one stream: it read every event
 * of the stream from the revision on and sorted them for the top of the page, which made paging
 * through a long stream quadratic (105 ms a page of 1,000 at revision 250,000 of 524,000, against
 * 0.6 ms; a 1,000,000-event balance took its first load over 200 s).
 */
export const READ_STREAM_FORWARDS_SQL = `SELECT ${EVENT_COLUMNS} FROM event_log AS e
  WHERE e.stream_no = (SELECT stream_no FROM streams WHERE stream_id = $1) AND e.revision >= $2 ORDER BY e.revision LIMIT $3`;
/** The same page for readStreamsPaged: the payload and its places only (see toStoredPayloads). */
export const READ_PAYLOADS_FORWARDS_SQL = `SELECT $1::text AS stream_id, e.revision, e.position, e.shape_no, e.body FROM event_log AS e
  WHERE e.stream_no = (SELECT stream_no FROM streams WHERE stream_id = $1) AND e.revision >= $2 ORDER BY e.revision LIMIT $3`;
/** The same, backwards from a revision (or from the end: the largest bigint), so that too is an index range. */
export const READ_STREAM_BACKWARDS_SQL = `SELECT ${EVENT_COLUMNS} FROM event_log AS e
  WHERE e.stream_no = (SELECT stream_no FROM streams WHERE stream_id = $1) AND e.revision <= COALESCE($2::bigint, 9223372036854775807)
  ORDER BY e.revision DESC LIMIT $3`;

/** Shapes are immutable and few: a reader keeps this many, least recently used leaving first. */
const MAX_CACHED_SHAPES = 10_000;

interface StreamRef {
  readonly streamId: string;
  readonly header: StreamHeader;
}

type Nullable<T> = { [K in keyof T]: T[K] | null };

interface EventRow {
  position: string;
  event_id: string;
  stream_no: string;
  revision: string;
  shape_no: number;
  body: string;
  meta_absent: number | null;
  meta: JsonObject | null;
  recorded_at: Date;
}

/** readStreamsPaged's columns (see toStoredPayloads). */
interface PayloadRow {
  stream_id: string;
  revision: string;
  position: string;
  shape_no: number;
  body: string;
}

interface AppendRow {
  request_index: number;
  last_revision: string;
  last_position: string;
  idempotent: boolean;
  stream_no: string;
  /** The stream's header and its keys in jsonb's order, when the call reduced the request's metadata itself. */
  header_keys: string[] | null;
  header: JsonObject | null;
}

/**
 * 024's append_events: the call's columns (see 022), its markers' hashes in hex, its channel,
 * and which requests' headers are wanted back.
 */
const APPEND_SQL = `SELECT request_index, last_revision, last_position, idempotent, stream_no, header_keys, header
  FROM append_events($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::uuid[], $6::integer[], $7::text, $8::jsonb,
                     $9::integer[], $10::jsonb, (SELECT array_agg(decode(h, 'hex')) FROM unnest($11::text[]) AS h), $12::text,
                     $13::boolean[])`;

export function createPostgresEventStore(options: PostgresEventStoreOptions): EventStore {
  const { pool } = options;
  const logger = options.logger.child({ module: 'event-store' });
  const listener = new NotificationListener(pool, options.notifyChannel ?? DEFAULT_NOTIFY_CHANNEL, logger);
  const timing = {
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    retryInitialDelayMs: options.retryInitialDelayMs ?? 100,
    retryMaxDelayMs: options.retryMaxDelayMs ?? 5000,
  };
  const subscriptions = createSubscriptionRegistry();

  // Every query goes through here so that a lost connection surfaces as the one retriable
  // error callers know, whichever operation hit it. `on` is the pool, or the client of an
  // exclusive append's transaction.
  const queryOn = async <Row extends object>(on: Queryable, name: string, text: string, values: unknown[]): Promise<Row[]> => {
    try {
      return (await on.query<Row>({ name, text, values })).rows;
    } catch (error) {
      const { code, detail } = error as { code?: unknown; detail?: unknown };
      if (code === 'TY004' && typeof detail === 'string') throw new MarkerAlreadyRecordedHashes(JSON.parse(detail) as string[]);
      if (code === 'TY005' && typeof detail === 'string') throw new StaleStreamHeaders(JSON.parse(detail) as number[]);
      if (code === 'TY006' && typeof detail === 'string') throw new StoredWithoutMarkerError(JSON.parse(detail) as string[]);
      throw translateError(error);
    }
  };
  const query = <Row extends object>(name: string, text: string, values: unknown[]): Promise<Row[]> => queryOn<Row>(pool, name, text, values);

  // Shapes by number and streams (name and header) by number, read once: neither changes once
  // stored. Only committed ones are ever read (a row names a shape or stream of its own
  // transaction or an earlier one), so nothing here can name what a rolled-back append registered.
  const shapes = new LruCache<number, EventShape>(MAX_CACHED_SHAPES);
  // Streams are many: their names and headers by number for reads, and the same headers by name
  // for appends, each bounded like the other (maxStreamHeaders). Weighed by no cache budget, so
  // they stay small: 100,000 (about 60 MiB) ran a consumer out of its bounded heap (176 MiB,
  // README "Memory of a consumer process") at 100,000 customers. A miss costs one lookup by
  // number per page, for the missing streams only.
  const maxStreamHeaders = options.maxStreamHeaders ?? DEFAULT_MAX_STREAM_HEADERS;
  const streams = new LruCache<string, StreamRef>({ maxEntries: Math.max(1, maxStreamHeaders), admission: 'frequency' });
  const headers = new StreamHeaders(maxStreamHeaders);
  /** The shapes these rows name (see takeCached), the missing ones read and kept. */
  const pageShapesOf = async (on: Queryable, rows: readonly { readonly shape_no: number }[]): Promise<Map<number, EventShape>> => {
    const { page: pageShapes, missing: missingShapes } = takeCached(shapes, rows, (row) => row.shape_no);
    if (missingShapes.size === 0) return pageShapes;
    const found = await queryOn<{ shape_no: number; shape: unknown }>(
      on,
      'tally_es_read_shapes',
      'SELECT shape_no, shape FROM event_shapes WHERE shape_no = ANY ($1::integer[])',
      [integerArrayLiteral([...missingShapes])],
    );
    for (const row of found) {
      const shape = toEventShape(row.shape);
      shapes.set(row.shape_no, shape);
      pageShapes.set(row.shape_no, shape);
    }
    return pageShapes;
  };
  /** The streams these rows name (name and header; see takeCached), the missing ones read and kept. */
  const pageStreamsOf = async (on: Queryable, rows: readonly { readonly stream_no: string }[]): Promise<Map<string, StreamRef>> => {
    const { page: pageStreams, missing: missingStreams } = takeCached(streams, rows, (row) => row.stream_no);
    if (missingStreams.size === 0) return pageStreams;
    // The header's keys in jsonb's order, as 022's append_events returns them: the mask's bit order.
    const found = await queryOn<{ stream_no: string; stream_id: string; header_keys: string[]; header: JsonObject }>(
      on,
      'tally_es_read_stream_headers',
      'SELECT stream_no, stream_id, ARRAY(SELECT jsonb_object_keys(header)) AS header_keys, header FROM streams WHERE stream_no = ANY ($1::bigint[])',
      [integerArrayLiteral([...missingStreams])],
    );
    for (const row of found) {
      const header = { streamNo: row.stream_no, keys: row.header_keys, header: row.header };
      const stream = { streamId: row.stream_id, header };
      streams.set(row.stream_no, stream);
      pageStreams.set(row.stream_no, stream);
      // The appends' cache too: a stream read (a balance loaded before it is charged) is then
      // appended to with its metadata reduced here, and append_events neither reduces it nor
      // sends the header back. Same header, same keys in jsonb's order; the function checks the
      // number against the stream's own anyway (TY005).
      headers.set(row.stream_id, header);
    }
    return pageStreams;
  };
  const toRecordedEvents = async (on: Queryable, rows: readonly EventRow[]): Promise<RecordedEvent[]> => {
    const [pageShapes, pageStreams] = await Promise.all([pageShapesOf(on, rows), pageStreamsOf(on, rows)]);
    return rows.map((row) => toRecordedEvent(row, pageShapes.get(row.shape_no), pageStreams.get(row.stream_no)));
  };
  /**
   * readStreamsPaged's rows: the payload and its place, the stream's name joined in the query.
   * No stream header, metadata, id or time is read or decoded: at 100,000 customers nearly every
   * balance the consumer charges is folded from its stream first, and those cost it a lookup of
   * the streams' headers per page and a Date per event (docs/benchmarks.md, 2026-12-02 afternoon).
   */
  const toStoredPayloads = async (on: Queryable, rows: readonly PayloadRow[]): Promise<StoredPayload[]> => {
    const pageShapes = await pageShapesOf(on, rows);
    return rows.map((row) => storedPayload(row.stream_id, row, pageShapes));
  };

  /**
   * One call of append_events. `reduce`: the metadata of streams whose headers are kept is
   * reduced here (the pool's calls); not inside appendExclusively's transaction, where a TY005
   * could not be answered by sending again.
   */
  const appendOn = async (
    on: Queryable,
    requests: readonly AppendRequest[],
    markers: readonly string[] = [],
    reduce = false,
  ): Promise<AppendResult[]> => {
    if (requests.length === 0 && markers.length === 0) return [];
    const payload = validateAppendRequests(requests);
    const hashes = markerHashes(markers);
    const started = process.hrtime.bigint();
    const notifyChannel = options.notifyChannel ?? DEFAULT_NOTIFY_CHANNEL;
    const call = async (useHeaders: boolean): Promise<AppendRow[]> => {
      const { columns, headersWanted } = encodeAppendColumns(payload, headers, useHeaders);
      try {
        return await queryOn<AppendRow>(on, 'tally_es_append_columns', APPEND_SQL, [
          ...columns,
          textArrayLiteral([...hashes.keys()]),
          notifyChannel,
          headersWanted,
        ]);
      } catch (error) {
        if (error instanceof MarkerAlreadyRecordedHashes) {
          throw new MarkerAlreadyRecordedError(error.hashes.map((hash) => hashes.get(hash)!).filter((marker) => marker !== undefined));
        }
        throw error;
      }
    };
    let rows: AppendRow[];
    try {
      rows = await call(reduce);
    } catch (error) {
      if (!(error instanceof StaleStreamHeaders)) throw error;
      // A kept header whose stream number names no stream of that name (nothing was written):
      // forgotten, and the call sent again with those requests' metadata whole.
      for (const index of error.requestIndexes) headers.delete(payload[index]!.streamId);
      rows = await call(true);
    }
    rows.sort((a, b) => a.request_index - b.request_index);
    const results = rows.map((row) => {
      const { streamId } = payload[row.request_index]!;
      if (row.header_keys !== null && row.header !== null) headers.set(streamId, { streamNo: row.stream_no, keys: row.header_keys, header: row.header });
      return {
        streamId: requests[row.request_index]!.streamId,
        nextExpectedRevision: BigInt(row.last_revision),
        position: BigInt(row.last_position),
        idempotent: row.idempotent,
      };
    });
    logger.debug(
      {
        streams: requests.length,
        events: payload.reduce((n, request) => n + request.events.length, 0),
        idempotent: results.filter((r) => r.idempotent).length,
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
      },
      'appended',
    );
    return results;
  };

  const appendMany = (requests: readonly AppendRequest[], appendOptions: AppendManyOptions = {}): Promise<AppendResult[]> =>
    appendOn(pool, requests, appendOptions.markers, true);

  const readStreamOn = async (
    on: Queryable,
    streamId: string,
    { direction = 'forwards', fromRevision, maxCount }: ReadStreamOptions = {},
  ): Promise<RecordedEvent[]> => {
    if (fromRevision !== undefined && fromRevision < 0n) {
      throw new InvalidEventStoreRequestError(`fromRevision must not be negative; got ${fromRevision}`);
    }
    const limit = checkMaxCount(maxCount);
    const rows =
      direction === 'forwards'
        ? await queryOn<EventRow>(
            on,
            'tally_es_read_stream_forwards',
            READ_STREAM_FORWARDS_SQL,
            [streamId, (fromRevision ?? 0n).toString(), limit],
          )
        : await queryOn<EventRow>(
            on,
            'tally_es_read_stream_backwards',
            READ_STREAM_BACKWARDS_SQL,
            [streamId, fromRevision?.toString() ?? null, limit],
          );
    return toRecordedEvents(on, rows);
  };

  const readAll = async ({ after = 0n, maxCount }: ReadAllOptions = {}): Promise<RecordedEvent[]> => {
    const rows = await query<EventRow>(
      'tally_es_read_all',
      `SELECT ${EVENT_COLUMNS} FROM event_log AS e WHERE e.position > $1 ORDER BY e.position LIMIT $2`,
      [after.toString(), checkMaxCount(maxCount)],
    );
    return toRecordedEvents(pool, rows);
  };

  /**
   * readAll's page without the metadata, the event's id and its time (see toStoredPayloads): a
   * rebuild folds every event of the log and looks at none of them. The stream's name comes from
   * the same cache by number as readAll's, so no join per row.
   */
  const readAllPayloads = async ({ after = 0n, maxCount }: ReadAllOptions = {}): Promise<StoredPayload[]> => {
    const rows = await query<{ position: string; stream_no: string; revision: string; shape_no: number; body: string }>(
      'tally_es_read_all_payloads',
      'SELECT e.position, e.stream_no, e.revision, e.shape_no, e.body FROM event_log AS e WHERE e.position > $1 ORDER BY e.position LIMIT $2',
      [after.toString(), checkMaxCount(maxCount)],
    );
    const [pageShapes, pageStreams] = await Promise.all([pageShapesOf(pool, rows), pageStreamsOf(pool, rows)]);
    return rows.map((row) => {
      const stream = pageStreams.get(row.stream_no);
      if (stream === undefined) throw new Error(`event at ${row.position} names stream ${row.stream_no}, which the store does not hold`);
      return storedPayload(stream.streamId, row, pageShapes);
    });
  };

  // The store's subscriptions share their reads of a page (see sharedPageReads).
  const subscriptionSource = sharedPageReads({
    readAll: (after, maxCount) => readAll({ after, maxCount }),
    ensureListening: () =>
      listener.ensureListening().catch((error: unknown) => {
        throw translateError(error);
      }),
    onAppended: (wake) => listener.register(wake),
  });

  const store: EventStore = {
    async appendToStream(streamId, events, { expectedRevision }) {
      const [result] = await appendMany([{ streamId, events, expectedRevision }]);
      return result!;
    },

    appendMany,

    readStream: (streamId, options) => readStreamOn(pool, streamId, options),

    async appendExclusively(work, exclusiveOptions = {}) {
      let checkedOut = false;
      try {
        return await withClient(
          pool,
          async (client) => {
            checkedOut = true;
            const plain = async (text: string) => {
              try {
                await client.query(text);
              } catch (error) {
                throw translateError(error);
              }
            };
            await plain('BEGIN');
            // The very lock append_events takes (001_event_store.sql), held from before the reads
            // until the commit: no append to this store's schema commits in between, so what `work`
            // reads is what the append below finds. Taken first, as append_events takes it first,
            // so lock order is the same everywhere: no deadlock.
            await plain("SELECT pg_advisory_xact_lock(1952541797, 'events'::regclass::oid::integer)");
            const { requests, value } = await work({ readStream: (streamId, options) => readStreamOn(client, streamId, options) });
            const results = await appendOn(client, requests, exclusiveOptions.markers);
            await plain('COMMIT');
            return { results, value };
          },
          // A connection that could not even roll back is not given back to the pool.
          { reusableAfterFailure: rolledBack },
        );
      } catch (error) {
        // Only the checkout's failure is pg's own here: the rest is translated already, or the caller's.
        throw checkedOut ? error : translateError(error);
      }
    },

    async readStreams(streamIds) {
      const streams = new Map<string, RecordedEvent[]>(streamIds.map((id) => [id, []]));
      if (streamIds.length === 0) return streams;
      const rows = await query<EventRow>(
        'tally_es_read_streams',
        `SELECT ${EVENT_COLUMNS} FROM ${EVENTS} WHERE s.stream_id = ANY ($1::text[]) ORDER BY s.stream_id, e.revision`,
        [textArrayLiteral([...new Set(streamIds)])],
      );
      for (const event of await toRecordedEvents(pool, rows)) streams.get(event.streamId)!.push(event);
      return streams;
    },

    async *readStreamsPaged(streamIds, { maxPageEvents = DEFAULT_MAX_PAGE_EVENTS, fromRevisions } = {}) {
      if (!Number.isSafeInteger(maxPageEvents) || maxPageEvents < 1) {
        throw new InvalidEventStoreRequestError(`maxPageEvents must be a positive integer; got ${maxPageEvents}`);
      }
      if (streamIds.length === 0) return;
      // The streams table knows each stream's length, so the reads can be cut to size before
      // any event is fetched: one query per group of short streams, pages for a long one. A stream
      // read from a revision counts only what follows it (nothing: no read at all).
      const fromOf = (streamId: string): bigint => fromRevisions?.get(streamId) ?? 0n;
      const lengths = await query<{ stream_id: string; last_revision: string }>(
        'tally_es_stream_lengths',
        'SELECT stream_id, last_revision FROM streams WHERE stream_id = ANY ($1::text[]) ORDER BY stream_id',
        [textArrayLiteral([...new Set(streamIds)])],
      );
      const groups = groupStreamsByEvents(
        lengths.map((row) => ({ streamId: row.stream_id, events: BigInt(row.last_revision) + 1n - fromOf(row.stream_id) })),
        maxPageEvents,
      );
      for (const group of groups) {
        if (group.kind === 'together') {
          const rows = await query<PayloadRow>(
            'tally_es_read_stream_payloads',
            `SELECT s.stream_id, e.revision, e.position, e.shape_no, e.body FROM ${EVENTS} JOIN unnest($1::text[], $2::bigint[]) AS f(stream_id, from_revision) ON f.stream_id = s.stream_id
             WHERE e.revision >= f.from_revision ORDER BY s.stream_id, e.revision`,
            [textArrayLiteral(group.streamIds), integerArrayLiteral(group.streamIds.map((streamId) => fromOf(streamId).toString()))],
          );
          yield await toStoredPayloads(pool, rows);
          continue;
        }
        // Until a short page: events appended meanwhile are read too, as readStreams would.
        for (let from = fromOf(group.streamId); ; ) {
          const rows = await query<PayloadRow>('tally_es_read_payloads_forwards', READ_PAYLOADS_FORWARDS_SQL, [group.streamId, from.toString(), maxPageEvents]);
          const page = await toStoredPayloads(pool, rows);
          if (page.length > 0) yield page;
          if (page.length < maxPageEvents) break;
          from = page[page.length - 1]!.revision + 1n;
        }
      }
    },

    // One statement for the three reads, so the marker lookup and the id lookup are written once.
    readEventsById: async (eventIds) => (await store.readAppendTraces([], eventIds)).events,

    readMarkers: async (markers) => (await store.readAppendTraces(markers, [])).markers,

    async readAppendTraces(markers, eventIds) {
      if (markers.length === 0 && eventIds.length === 0) return { markers: new Set(), events: [] };
      const hashes = markerHashes(markers);
      // The marker lookup and the id lookup in one statement: a writer checks both before
      // every append, and each round trip costs the caller a syscall and a wake-up of the
      // backend, most of a small batch's time on a busy machine. The hashes found come on every
      // row; the events' columns are null on the one row there is when no event is stored.
      // ARRAY(...) is computed once, so the marker lookup is one index scan of an array (a
      // semi-join on the unnest measured five times slower for a chunk of 2,000).
      const rows = await query<{ hashes: string[] } & Nullable<EventRow>>(
        'tally_es_read_append_traces',
        `SELECT m.hashes, e.* FROM (
           SELECT coalesce(array_agg(encode(marker_hash, 'hex')), '{}') AS hashes FROM append_markers
           WHERE marker_hash = ANY (ARRAY(SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h))
         ) AS m
         LEFT JOIN LATERAL (SELECT ${EVENT_COLUMNS} FROM event_log AS e WHERE e.event_id = ANY ($2::uuid[])) AS e ON true
         ORDER BY e.position`,
        [textArrayLiteral([...hashes.keys()]), textArrayLiteral(eventIds.map((id) => checkEventId(id)))],
      );
      const found = new Set((rows[0]?.hashes ?? []).map((hash) => hashes.get(hash)!));
      const stored = rows.filter((row): row is { hashes: string[] } & EventRow => row.position !== null);
      return { markers: found, events: await toRecordedEvents(pool, stored) };
    },

    readAll,
    readAllPayloads,

    async headPosition() {
      const [row] = await query<{ head: string }>(
        'tally_es_head_position',
        'SELECT coalesce(max(position), 0) AS head FROM event_log',
        [],
      );
      return BigInt(row!.head);
    },

    subscribeToAll(subscribeOptions) {
      const subscription = startSubscription(
        subscriptionSource,
        timing,
        subscribeOptions,
        logger.child({ subscription: subscribeOptions.after?.toString() ?? 'start' }),
      );
      return subscriptions.track(subscription);
    },

    /** Stops this store's subscriptions and its LISTEN connection; the pool stays open (the caller owns it). */
    async close() {
      await subscriptions.stopAll();
      await listener.close();
    },
  };
  return store;
}

/** TY004 from append_events, before its hashes are mapped back to the caller's markers. */
class MarkerAlreadyRecordedHashes extends Error {
  constructor(readonly hashes: readonly string[]) {
    super('append markers already recorded');
  }
}

/** TY005 from append_events: the requests whose stream numbers name no stream of theirs. */
class StaleStreamHeaders extends Error {
  constructor(readonly requestIndexes: readonly number[]) {
    super('stream numbers that name no stream of the request');
  }
}

/**
 * The validated requests as 022's append_events reads them, one array per column: each event's
 * payload encoded (see eventPayloadCodec), its shape named by its index among the call's
 * distinct shapes; with `reduce`, its metadata reduced against its stream's header when
 * `headers` keeps it (p_stream_nos then names the stream), else whole. And 024's
 * p_headers_wanted: a header is asked back only for a stream whose header `headers` lacks and
 * would keep. Asked after `get` (which counts the append for admission), it is the admission's
 * own answer; a header refused costs that stream's next append a reduction in SQL, as before.
 */
function encodeAppendColumns(
  payload: readonly AppendPayload[],
  headers: StreamHeaders,
  reduce: boolean,
): { readonly columns: unknown[]; readonly headersWanted: string } {
  const shapeIndexes = new Map<string, number>();
  const streams: string[] = [];
  const expected: string[] = [];
  const counts: number[] = [];
  const streamNos: (string | null)[] = [];
  const ids: string[] = [];
  const shapes: number[] = [];
  const bodies: string[] = [];
  const absents: (number | null)[] = [];
  const metadata: string[] = [];
  const wanted: string[] = [];
  for (const request of payload) {
    const header = reduce ? headers.get(request.streamId) : undefined;
    wanted.push(header === undefined && headers.wants(request.streamId) ? 't' : 'f');
    streams.push(request.streamId);
    expected.push(request.expectedRevision);
    counts.push(request.events.length);
    streamNos.push(header?.streamNo ?? null);
    for (const event of request.events) {
      const { shapeKey, body } = encodePayload(event.type, event.data);
      let shape = shapeIndexes.get(shapeKey);
      if (shape === undefined) {
        shape = shapeIndexes.size;
        shapeIndexes.set(shapeKey, shape);
      }
      ids.push(event.id);
      shapes.push(shape);
      bodies.push(body);
      let meta: JsonObject | null = event.metadata;
      let absent: number | null = null;
      if (header !== undefined) ({ meta, absent } = reduceMetadata(event.metadata, header));
      absents.push(absent);
      metadata.push(JSON.stringify(meta));
    }
  }
  // Written here rather than by pg's array escaping, element by element (arrayLiteral): ids are
  // checked UUIDs and expected revisions keywords or digits, which an array literal takes as they
  // are; bodies are JSON texts, in which U+001F only ever appears escaped (022 splits them on it).
  const columns = [
    textArrayLiteral(streams),
    `{${expected.join(',')}}`,
    integerArrayLiteral(counts),
    integerArrayLiteral(streamNos),
    `{${ids.join(',')}}`,
    integerArrayLiteral(shapes),
    bodies.join('\u001f'),
    `[${metadata.join(',')}]`,
    integerArrayLiteral(absents),
    `[${[...shapeIndexes.keys()].join(',')}]`,
  ];
  return { columns, headersWanted: `{${wanted.join(',')}}` };
}

/**
 * What a page's rows name, taken from a cache at once, before any await (another read may evict
 * it meanwhile, and every row must find its own), and the keys the cache lacks.
 */
function takeCached<Row, K extends NonNullable<unknown>, V extends NonNullable<unknown>>(
  cache: LruCache<K, V>,
  rows: readonly Row[],
  keyOf: (row: Row) => K,
): { readonly page: Map<K, V>; readonly missing: Set<K> } {
  const page = new Map<K, V>();
  const missing = new Set<K>();
  for (const row of rows) {
    const key = keyOf(row);
    if (page.has(key) || missing.has(key)) continue;
    const value = cache.get(key);
    if (value === undefined) missing.add(key);
    else page.set(key, value);
  }
  return { page, missing };
}

/** A row's payload decoded with its shape, and its places. */
function storedPayload(
  streamId: string,
  row: { readonly revision: string; readonly position: string; readonly shape_no: number; readonly body: string },
  shapes: ReadonlyMap<number, EventShape>,
): StoredPayload {
  const shape = shapes.get(row.shape_no);
  if (shape === undefined) throw new Error(`an event of stream ${streamId} names shape ${row.shape_no}, which the store does not hold`);
  const { type, data } = decodePayload(shape, row.body);
  return { streamId, revision: BigInt(row.revision), position: BigInt(row.position), type, data };
}

function toRecordedEvent(row: EventRow, shape: EventShape | undefined, stream: StreamRef | undefined): RecordedEvent {
  if (shape === undefined) throw new Error(`event ${row.event_id} names shape ${row.shape_no}, which the store does not hold`);
  if (stream === undefined) throw new Error(`event ${row.event_id} names stream ${row.stream_no}, which the store does not hold`);
  const { type, data } = decodePayload(shape, row.body);
  return {
    id: row.event_id,
    type,
    streamId: stream.streamId,
    revision: BigInt(row.revision),
    position: BigInt(row.position),
    data,
    metadata: decodeStoredMetadata(stream.header, row.meta_absent, row.meta),
    recordedAt: row.recorded_at,
  };
}
