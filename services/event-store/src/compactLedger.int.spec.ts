import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, migrationsBefore, type MigrationsFolder, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore, DEFAULT_NOTIFY_CHANNEL } from './createPostgresEventStore';
import type { EventStore, EventToAppend, JsonObject, RecordedEvent } from './eventStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** Payloads and metadata meant to find the edges of the encoding (see eventPayloadCodec.ts). */
function varied(streamIndex: number, count: number): EventToAppend[] {
  const at = new Date(Date.UTC(2026, 10, 30, 11, 5, streamIndex, 123)).toISOString();
  const header: JsonObject = { schemaVersion: 1, balanceId: `bal-${streamIndex}`, customerId: `cus:${streamIndex}%`, productId: 'p', causationId: 'open', requestHash: 'nonce' };
  const datas: JsonObject[] = [
    { balanceId: `bal-${streamIndex}`, name: 'ünï "quoted"', lowBalanceThreshold: null, occurredAt: at },
    { credits: '1.5', source: 'usage', reason: null, usage: { eventId: `u-${streamIndex}`, event: 'api_call', timestamp: at, quantity: '500' }, balanceAfter: '98.5', occurredAt: at },
    { credits: '1.50', leading: '007', tiny: '0.0000001', noMillis: '2026-11-30T11:05:28Z', impossible: '2026-02-30T00:00:00.000Z', list: ['1.5', { a: 1 }], n: 2.25, t: true, z: null },
    { late: '2100-01-01T00:00:00.000Z', nested: { early: '1999-12-31T23:59:59.999Z', none: null }, at },
    {},
    { nested: { deeper: { deepest: '2' } }, empty: {}, text: '' },
  ];
  const metadatas: JsonObject[] = [
    header,
    { schemaVersion: 1, balanceId: `bal-${streamIndex}`, customerId: `cus:${streamIndex}%`, productId: 'p' },
    { ...header, causationId: `other-${streamIndex}`, extra: { deep: [1, 2] } },
    {},
    { ...header, requestHash: null },
  ];
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    type: i === 0 ? 'CreditBalanceOpened' : `Type${i % 3}`,
    data: datas[i % datas.length]!,
    metadata: metadatas[i % metadatas.length]!,
  }));
}

const comparable = (events: readonly RecordedEvent[]) =>
  events.map(({ id, type, streamId, revision, position, data, metadata, recordedAt }) => ({ id, type, streamId, revision, position, data, metadata, recordedAt }));

/**
 * Migration 017 converts a ledger written before it, and 018's append writes the same encoding:
 * whatever the store held or is given, it reads back as it was appended, through the event store
 * (Node's decoding) and through the `events` view (SQL's).
 */
describe('the compact ledger (migrations 017 and 018)', () => {
  let db: TestSchema;
  let before017: MigrationsFolder;
  let store: EventStore;

  beforeAll(async () => {
    before017 = await migrationsBefore(17);
    db = await createTestSchema({ prefix: 'compact_ledger', migrationsDir: before017.dir });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
    await before017?.remove();
  });

  it('converts the events stored before it, and reads them back, new appends beside them, as appended', async () => {
    // Written as the store did before 017: 001's input to 010's append_events, jsonb columns.
    const streams = Array.from({ length: 4 }, (_, i) => ({ streamId: `credit-balance-bal-${i}`, events: varied(i, 7 + i) }));
    await db.pool.query('SELECT * FROM append_events($1::jsonb, $2)', [
      JSON.stringify(streams.map((s) => ({ streamId: s.streamId, expectedRevision: 'no_stream', events: s.events }))),
      DEFAULT_NOTIFY_CHANNEL,
    ]);
    const { rows: stored } = await db.pool.query<{ position: string; event_id: string; stream_id: string; revision: string; type: string; data: JsonObject; metadata: JsonObject; recorded_at: Date }>(
      'SELECT * FROM events ORDER BY position',
    );

    expect(await db.upgrade()).toEqual(expect.arrayContaining(['017_compact_ledger', '018_compact_append']));

    const all = await store.readAll();
    expect(comparable(all)).toEqual(
      stored.map((row) => ({
        id: row.event_id,
        type: row.type,
        streamId: row.stream_id,
        revision: BigInt(row.revision),
        position: BigInt(row.position),
        data: row.data,
        metadata: row.metadata,
        recordedAt: row.recorded_at,
      })),
    );
    // The same through every read, and after it new appends to old and new streams.
    for (const s of streams) {
      expect(comparable(await store.readStream(s.streamId))).toEqual(comparable(all.filter((e) => e.streamId === s.streamId)));
    }
    const older = varied(0, 4).slice(1);
    const more = varied(9, 6);
    await store.appendMany([
      { streamId: streams[0]!.streamId, expectedRevision: 6n, events: older },
      { streamId: 'credit-balance-new', expectedRevision: 'no_stream', events: more },
    ]);
    const after = await store.readAll({ after: all.at(-1)!.position });
    expect(after.map(({ id, type, data, metadata }) => ({ id, type, data, metadata }))).toEqual(
      [...older, ...more].map(({ id, type, data, metadata }) => ({ id, type, data, metadata })),
    );

    // SQL's decoding (the view) agrees with Node's on the converted rows and the new ones.
    const { rows: viewed } = await db.pool.query<{ event_id: string; stream_id: string; revision: string; type: string; data: JsonObject; metadata: JsonObject }>(
      'SELECT event_id, stream_id, revision, type, data, metadata FROM events ORDER BY position',
    );
    const everything = await store.readAll();
    expect(viewed.map((row) => ({ id: row.event_id, streamId: row.stream_id, revision: BigInt(row.revision), type: row.type, data: row.data, metadata: row.metadata }))).toEqual(
      everything.map(({ id, streamId, revision, type, data, metadata }) => ({ id, streamId, revision, type, data, metadata })),
    );
  });

  it('stores rows written into the events view as an append would, for scripts that write history directly', async () => {
    // A schema of its own at the latest migration: the file's other schema stays before 017 until
    // the other test migrates it, and tests may run in any order.
    const current = await createTestSchema({ prefix: 'compact_ledger_scripted' });
    const currentStore = createPostgresEventStore({ pool: current.pool, logger });
    try {
      const streamId = `scripted-${randomUUID()}`;
      const [opened] = await currentStore.appendMany([{ streamId, expectedRevision: 'no_stream', events: varied(1, 1) }]);
      const history = varied(2, 5).slice(1);
      await current.pool.query(
        `INSERT INTO events (position, event_id, stream_id, revision, type, data, metadata, recorded_at)
         SELECT nextval('events_position_seq'), h.id, $1, $2::bigint + h.ord, h.type, h.data, h.metadata, now()
         FROM ROWS FROM (jsonb_to_recordset($3::jsonb) AS (id uuid, type text, data jsonb, metadata jsonb))
           WITH ORDINALITY AS h(id, type, data, metadata, ord)`,
        [streamId, opened!.nextExpectedRevision.toString(), JSON.stringify(history)],
      );
      await current.pool.query(
        'UPDATE streams SET (last_revision, last_position) = (SELECT max(revision), max(position) FROM events WHERE stream_id = $1) WHERE stream_id = $1',
        [streamId],
      );
      const read = await currentStore.readStream(streamId, { fromRevision: 1n });
      expect(read.map(({ id, type, data, metadata }) => ({ id, type, data, metadata }))).toEqual(history.map(({ id, type, data, metadata }) => ({ id, type, data, metadata })));
      // And the store appends after them with the revision the script left.
      await currentStore.appendToStream(streamId, varied(3, 2).slice(1), { expectedRevision: BigInt(history.length) });
    } finally {
      await currentStore.close();
      await current.drop();
    }
  });
});
