import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import type { EventStore, EventToAppend, JsonObject } from './eventStore';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

// Keys jsonb orders otherwise than a JavaScript object does (integer-like ones, by length), a
// number a double cannot hold, a nested value, "__proto__": the edges of the mask and the diff.
const header = JSON.parse(
  '{"schemaVersion": 2, "10": "ten", "2": "two", "balanceId": "bal-1", "big": 12345678901234567890, "ratio": 2.5, "nested": {"x": [1, 2]}, "causationId": "open", "__proto__": "p", "1234567": "seven digits"}',
) as JsonObject;
const { causationId: _causation, ...withoutCausation } = header;
const { ratio: _ratio, ...withoutRatio } = header;
const metadatas: JsonObject[] = [
  withoutCausation,
  header,
  { ...header, 2: 'changed', extra: 'new' },
  {},
  { ...withoutCausation, 10: null },
  withoutRatio,
  JSON.parse('{"__proto__": "other", "big": 12345678901234567890, "ratio": 2.5}') as JsonObject,
];

const events = (count: number, type = 'Charged'): EventToAppend[] =>
  Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type, data: { n: String(i) }, metadata: metadatas[i % metadatas.length]! }));

/**
 * 022: the store reduces an event's metadata against its stream's header itself once it has
 * been given the header, and the rows read back as appended, through Node's decoding and SQL's.
 */
describe('metadata reduced by the PostgreSQL store (migration 022)', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_reduced_meta' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const stored = async (streamId: string) =>
    (
      await db.pool.query<{ revision: string; metadata: JsonObject; meta: JsonObject | null; absent: number | null; sql_absent: number | null }>(
        `SELECT e.revision, v.metadata, e.meta, e.meta_absent AS absent, es_meta_absent(s.header, v.metadata) AS sql_absent
         FROM event_log AS e JOIN streams AS s ON s.stream_no = e.stream_no JOIN events AS v ON v.event_id = e.event_id
         WHERE s.stream_id = $1 ORDER BY e.revision`,
        [streamId],
      )
    ).rows;

  it('reads back, through a fresh store and the events view, what it reduced', async () => {
    const streamId = `reduced-${randomUUID()}`;
    const opening = { id: randomUUID(), type: 'Opened', data: {}, metadata: header };
    // The first append reduces in SQL and hands the header back; the later ones reduce in Node.
    await store.appendToStream(streamId, [opening], { expectedRevision: 'no_stream' });
    const first = events(7);
    const second = events(7, 'Again');
    await store.appendMany([{ streamId, expectedRevision: 0n, events: first }]);
    await store.appendMany([{ streamId, expectedRevision: 7n, events: second }]);
    const appended = [opening, ...first, ...second];

    const fresh = createPostgresEventStore({ pool: db.pool, logger });
    try {
      for (const reader of [store, fresh]) {
        expect((await reader.readStream(streamId)).map((e) => ({ id: e.id, metadata: e.metadata }))).toEqual(
          appended.map((e) => ({ id: e.id, metadata: JSON.parse(JSON.stringify(e.metadata)) as JsonObject })),
        );
      }
    } finally {
      await fresh.close();
    }
    const rows = await stored(streamId);
    expect(rows.map((row) => row.metadata)).toEqual(appended.map((e) => JSON.parse(JSON.stringify(e.metadata)) as JsonObject));
    // The mask is SQL's, bit for bit (jsonb's key order, not JavaScript's).
    expect(rows.map((row) => row.absent)).toEqual(rows.map((row) => row.sql_absent));
    // Node's reduction keeps what it cannot be sure is equal (a number not a safe integer, a
    // nested value) where SQL's drops it: so the appends after the first were reduced in Node.
    expect(rows[1]!.meta).toEqual({ big: Number('12345678901234567890'), ratio: 2.5, nested: { x: [1, 2] } });
  });

  it('reduces in Node, from its first append, the metadata of a stream it has read', async () => {
    const streamId = `read-first-${randomUUID()}`;
    const opening = { id: randomUUID(), type: 'Opened', data: {}, metadata: header };
    await store.appendToStream(streamId, [opening], { expectedRevision: 'no_stream' });
    // A process that meets the stream by reading it (a consumer loading a balance before charging it).
    const reader = createPostgresEventStore({ pool: db.pool, logger });
    const charged = { id: randomUUID(), type: 'Charged', data: {}, metadata: header };
    try {
      await reader.readStream(streamId);
      await reader.appendMany([{ streamId, expectedRevision: 0n, events: [charged] }]);
    } finally {
      await reader.close();
    }
    const rows = await stored(streamId);
    expect(rows.map((row) => row.metadata)).toEqual([opening, charged].map((e) => JSON.parse(JSON.stringify(e.metadata)) as JsonObject));
    expect(rows.map((row) => row.absent)).toEqual(rows.map((row) => row.sql_absent));
    // SQL would have stored nothing for metadata equal to the header; Node keeps what it cannot be
    // sure is equal: the header it was given by the read stood for the first append.
    expect(rows[1]!.meta).toEqual({ big: Number('12345678901234567890'), ratio: 2.5, nested: { x: [1, 2] } });
  });

  it('reads a page whose streams are partly in a full stream cache and partly not', async () => {
    const streamIds = [0, 1, 2].map((i) => `small-cache-${i}-${randomUUID()}`);
    await store.appendMany(streamIds.map((streamId) => ({ streamId, expectedRevision: 'no_stream' as const, events: events(1) })));
    const small = createPostgresEventStore({ pool: db.pool, logger, maxStreamHeaders: 2 });
    try {
      // The first stream cached, then a page naming it and two more: the cache cannot hold all three.
      await small.readStream(streamIds[0]!);
      const read = await small.readAll({});
      expect(streamIds.every((streamId) => read.some((event) => event.streamId === streamId))).toBe(true);
      expect((await small.readStream(streamIds[0]!)).map((event) => event.streamId)).toEqual([streamIds[0]]);
    } finally {
      await small.close();
    }
  });

  it('hands a header back only where it is wanted (024), and to a caller of the twelve arguments every one', async () => {
    // Three new streams per call: append_events reduces each itself (no stream number given).
    const call = async (wanted: string | null) => {
      const streamIds = [0, 1, 2].map((i) => `wanted-${i}-${randomUUID()}`);
      const columns = [
        `{${streamIds.join(',')}}`,
        '{no_stream,no_stream,no_stream}',
        '{1,1,1}',
        '{NULL,NULL,NULL}',
        `{${[0, 1, 2].map(() => randomUUID()).join(',')}}`,
        '{0,0,0}',
        ['[]', '[]', '[]'].join('\u001f'),
        JSON.stringify([header, header, header]),
        '{NULL,NULL,NULL}',
        '[["Opened", []]]',
      ];
      const twelve = `append_events($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::uuid[], $6::integer[], $7::text, $8::jsonb,
                                   $9::integer[], $10::jsonb, NULL::bytea[], NULL::text`;
      const { rows } = await db.pool.query<{ request_index: number; header_keys: string[] | null; header: JsonObject | null }>(
        wanted === null
          ? `SELECT request_index, header_keys, header FROM ${twelve}) ORDER BY request_index`
          : `SELECT request_index, header_keys, header FROM ${twelve}, $11::boolean[]) ORDER BY request_index`,
        wanted === null ? columns : [...columns, wanted],
      );
      return rows.map((row) => (row.header === null ? null : { keys: row.header_keys, id: row.header['balanceId'] }));
    };
    // The keys in jsonb's order (shorter first, then bytewise), as the mask's bits count them.
    const returned = { keys: ['2', '10', 'big', 'ratio', 'nested', '1234567', '__proto__', 'balanceId', 'causationId', 'schemaVersion'], id: 'bal-1' };
    expect(await call('{f,t,NULL}')).toEqual([null, returned, returned]);
    expect(await call(null)).toEqual([returned, returned, returned]);
    await expect(call('{t,t}')).rejects.toMatchObject({ code: '22023' });
  });

  it('keeps a value holding U+001F, the character that joins the bodies of a call', async () => {
    const streamId = `separator-${randomUUID()}`;
    const appended: EventToAppend[] = [
      { id: randomUUID(), type: 'Odd', data: { a: 'x\u001fy', b: '\u001f' }, metadata: {} },
      { id: randomUUID(), type: 'Odd', data: { a: '', c: 'z' }, metadata: {} },
    ];
    await store.appendMany([
      { streamId, expectedRevision: 'no_stream', events: appended },
      { streamId: `${streamId}-2`, expectedRevision: 'no_stream', events: events(2) },
    ]);
    expect((await store.readStream(streamId)).map((e) => e.data)).toEqual(appended.map((e) => e.data));
  });

  it('sends the metadata whole again when a kept header no longer names the stream (TY005)', async () => {
    const streamId = `recreated-${randomUUID()}`;
    await store.appendToStream(streamId, [{ id: randomUUID(), type: 'Opened', data: {}, metadata: header }], { expectedRevision: 'no_stream' });
    await store.appendMany([{ streamId, expectedRevision: 0n, events: events(2) }]);
    // The stream made again under another number with another header, behind the store's back.
    await db.pool.query('DELETE FROM event_log WHERE stream_no = (SELECT stream_no FROM streams WHERE stream_id = $1)', [streamId]);
    await db.pool.query('DELETE FROM streams WHERE stream_id = $1', [streamId]);
    const other = createPostgresEventStore({ pool: db.pool, logger });
    const reopened = { id: randomUUID(), type: 'Opened', data: {}, metadata: { causationId: 'again', 2: 'two' } };
    try {
      await other.appendToStream(streamId, [reopened], { expectedRevision: 'no_stream' });
    } finally {
      await other.close();
    }

    const later = events(6);
    const [result] = await store.appendMany([{ streamId, expectedRevision: 0n, events: later }]);
    expect(result!.nextExpectedRevision).toBe(6n);
    const read = await store.readStream(streamId);
    expect(read.map((e) => e.metadata)).toEqual([reopened, ...later].map((e) => JSON.parse(JSON.stringify(e.metadata)) as JsonObject));
    const rows = await stored(streamId);
    expect(rows.map((row) => row.absent)).toEqual(rows.map((row) => row.sql_absent));
  });
});
