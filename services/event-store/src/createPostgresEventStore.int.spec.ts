import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore, READ_PAYLOADS_FORWARDS_SQL, READ_STREAM_BACKWARDS_SQL, READ_STREAM_FORWARDS_SQL } from './createPostgresEventStore';
import type { EventStore, EventToAppend, JsonObject } from './eventStore';

/**
 * What PostgreSQL's store does beyond the port (the port's behaviour, and PostgreSQL's contiguous
 * positions, are the conformance suite's: postgresEventStore.conformance.int.spec.ts): a stream
 * longer than a page of readStreamsPaged has pages of its own (groupStreamsByEvents); an empty
 * schema starts at 0.
 */

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function events(count: number): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Tested', data: { i } }));
}

/** A store over a schema of its own, closed and dropped after the test whatever it did. */
async function withStore(prefix: string, test: (store: EventStore, db: TestSchema) => Promise<void>): Promise<void> {
  const db = await createTestSchema({ prefix });
  const store = createPostgresEventStore({ pool: db.pool, logger });
  try {
    await test(store, db);
  } finally {
    await store.close();
    await db.drop();
  }
}

describe('PostgreSQL event store paged reads', () => {
  it('gives a stream longer than a page pages of its own, and groups short streams', () =>
    withStore('es_paged', async (store) => {
      const lengths = [1, 3, 12, 2, 2, 4, 9];
      const ids = lengths.map(() => `balance-${randomUUID()}`);
      await store.appendMany(ids.map((streamId, i) => ({ streamId, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
      const pages: string[][] = [];
      for await (const page of store.readStreamsPaged(ids, { maxPageEvents: 4 })) pages.push(page.map((e) => e.streamId));
      expect(pages.filter((page) => page.every((id) => id === ids[2])).map((page) => page.length)).toEqual([4, 4, 4]);
      expect(pages.filter((page) => page.every((id) => id === ids[6])).map((page) => page.length)).toEqual([4, 4, 1]);
      expect(pages.flat()).toHaveLength(33);
    }));
});

/** A plan node of EXPLAIN (ANALYZE, FORMAT JSON), as far as these tests read it. */
interface PlanNode {
  readonly 'Relation Name'?: string;
  readonly 'Actual Rows': number;
  readonly Plans?: readonly PlanNode[];
}

function rowsReadFrom(node: PlanNode, relation: string): number {
  const own = node['Relation Name'] === relation ? node['Actual Rows'] : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsReadFrom(child, relation), 0);
}

describe('PostgreSQL event store reads of one stream', () => {
  it('reads a page of a long stream as an index range stopped at the limit, whatever the plan (a page costs the same at any revision)', () =>
    withStore('es_page_plan', async (store, db) => {
      const streamId = `balance-${randomUUID()}`;
      for (let start = 0; start < 3000; start += 500) {
        await store.appendToStream(streamId, events(500), { expectedRevision: start === 0 ? 'no_stream' : BigInt(start - 1) });
      }
      await db.pool.query('ANALYZE');
      const client = await db.pool.connect();
      try {
        // The plan a prepared statement settles on after a few executions, whatever its arguments.
        await client.query('SET plan_cache_mode = force_generic_plan');
        const pages = [
          { sql: READ_STREAM_FORWARDS_SQL, from: '1000', first: 1000n },
          { sql: READ_PAYLOADS_FORWARDS_SQL, from: '1000', first: 1000n },
          { sql: READ_STREAM_BACKWARDS_SQL, from: '2000', first: 2000n },
          { sql: READ_STREAM_BACKWARDS_SQL, from: null, first: 2999n },
        ];
        for (const [index, { sql, from, first }] of pages.entries()) {
          await client.query(`PREPARE page_${index} AS ${sql}`);
          const execute = `EXECUTE page_${index}($1, ${from === null ? 'NULL' : `'${from}'`}, 10)`;
          const { rows } = await client.query<{ position: string; revision: string }>(execute.replace('$1', `'${streamId}'`));
          expect(rows.map((row) => BigInt(row.revision))[0]).toBe(first);
          expect(rows).toHaveLength(10);
          const [explained] = (await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${execute.replace('$1', `'${streamId}'`)}`)).rows;
          // Joined to streams by name, the plan read 2,000 or 3,000 rows of the stream and sorted them.
          expect(rowsReadFrom(explained!['QUERY PLAN'][0]!.Plan, 'event_log')).toBeLessThanOrEqual(10);
        }
      } finally {
        client.release();
      }
    }));
});

describe('PostgreSQL event store on an empty schema', () => {
  it('has head position 0 and nothing to read', () =>
    withStore('es_empty', async (store) => {
      expect(await store.headPosition()).toBe(0n);
      expect(await store.readAll()).toEqual([]);
    }));
});

describe('PostgreSQL event store metadata', () => {
  it("rebuilds each event's metadata in Node exactly as 017's es_decode_metadata does in SQL", () =>
    withStore('es_meta', async (store, db) => {
      const streamId = `balance-${randomUUID()}`;
      // The first event's metadata is the stream's header; integer-like, non-ASCII and
      // "__proto__" keys, where an object's own key order differs from jsonb's. As JSON: in a
      // literal, "__proto__" would set the prototype instead of making a key.
      const header = '"causationId":"c-1","10":"ten","2":"two","é":"accent","zz":"z","nested":{"a":[1,2]},"__proto__":"proto","n":1.5';
      const fewer = '"causationId":"c-1","2":"two","é":"accent","nested":{"a":[1,2]},"__proto__":"proto","n":1.5';
      const metadatas = [
        `{${header}}`,
        '{}', // every header key absent
        `{${header},"causationId":"c-2"}`, // a key differing
        `{${fewer}}`, // two keys absent, one of them integer-like
        `{${fewer},"extra":true,"7":null,"b":{"deep":"x"},"n":2}`, // absent, added and differing
      ];
      const toAppend = metadatas.map((metadata) => ({ id: randomUUID(), type: 'Tested', data: { at: 1 }, metadata: JSON.parse(metadata) as JsonObject }));
      await store.appendToStream(streamId, toAppend, { expectedRevision: 'no_stream' });
      const { rows } = await db.pool.query<{ metadata: string }>('SELECT metadata::text FROM events WHERE stream_id = $1 ORDER BY revision', [streamId]);
      const inSql = rows.map((row) => JSON.parse(row.metadata) as unknown);
      expect(inSql).toHaveLength(metadatas.length);
      const read = [(await store.readAll()).map((e) => e.metadata), (await store.readStream(streamId)).map((e) => e.metadata)];
      for (const metadata of read) {
        // Same keys, values and key order as jsonb's text parsed.
        expect(metadata.map((m) => JSON.stringify(m))).toEqual(inSql.map((m) => JSON.stringify(m)));
        expect(metadata).toEqual(inSql);
      }
      expect(Object.prototype.hasOwnProperty.call(read[0]![0], '__proto__')).toBe(true);
      // The header's nested values are each event's own.
      (read[0]![0]!.nested as { a: number[] }).a.push(3);
      expect((await store.readAll())[0]!.metadata.nested).toEqual({ a: [1, 2] });
    }));
});

describe('PostgreSQL event store recorded times', () => {
  it('gives each event the recordedAt pg itself makes of recorded_at, microseconds dropped, before 1970 too', () =>
    withStore('es_recorded', async (store, db) => {
      const streamId = `balance-${randomUUID()}`;
      await store.appendMany([{ streamId, expectedRevision: 'no_stream', events: events(6) }]);
      // Times with and without microseconds, on both sides of the epoch, as stored rows may hold.
      const stored = ['2026-12-01 12:00:00.123456+00', '2026-12-01 12:00:00.999999+00', '2026-12-01 12:00:00+00', '1969-12-31 23:59:59.000001+00', '1900-02-28 01:02:03.0505+00'];
      await db.pool.query(
        `UPDATE event_log SET recorded_at = (ARRAY[${stored.map((_, i) => `$${i + 1}::timestamptz`).join(',')}])[revision + 1]
         WHERE revision < ${stored.length} AND stream_no = (SELECT stream_no FROM streams WHERE stream_id = $${stored.length + 1})`,
        [...stored, streamId],
      );
      const byPg = await db.pool.query<{ event_id: string; recorded_at: Date }>('SELECT event_id, recorded_at FROM event_log ORDER BY position');
      const read = await store.readStream(streamId);
      expect(read.map((event) => [event.id, event.recordedAt.getTime()])).toEqual(byPg.rows.map((row) => [row.event_id, row.recorded_at.getTime()]));
      expect(read[0]!.recordedAt.toISOString()).toBe('2026-12-01T12:00:00.123Z');
      expect(read[3]!.recordedAt.toISOString()).toBe('1969-12-31T23:59:59.000Z');
    }));
});
