import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, createUnreachablePool, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { DuplicateEventIdError, EventStoreUnavailableError, InvalidEventStoreRequestError, WrongExpectedRevisionError } from './errors';
import type { EventStore, EventToAppend, ExpectedRevision, RecordedEvent } from './eventStore';

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function event(type = 'Tested', data: EventToAppend['data'] = {}): EventToAppend {
  return { id: randomUUID(), type, data };
}

function events(count: number): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => event('Tested', { i }));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('PostgreSQL event store', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_store' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const newStream = (): string => `balance-${randomUUID()}`;

  describe('expected revision', () => {
    it('no_stream: creates a stream; fails once it exists, reporting its last revision', async () => {
      const streamId = newStream();
      const first = await store.appendToStream(streamId, events(2), { expectedRevision: 'no_stream' });
      expect(first).toMatchObject({ streamId, nextExpectedRevision: 1n, idempotent: false });

      const error = await rejection(store.appendToStream(streamId, events(1), { expectedRevision: 'no_stream' }));
      expect(error).toBeInstanceOf(WrongExpectedRevisionError);
      expect(error).toMatchObject({ streamId, expected: 'no_stream', actual: 1n, retriable: true });
    });

    it('stream_exists: fails on a missing stream with actual no_stream; passes on an existing one', async () => {
      const streamId = newStream();
      const error = await rejection(store.appendToStream(streamId, events(1), { expectedRevision: 'stream_exists' }));
      expect(error).toMatchObject({ streamId, expected: 'stream_exists', actual: 'no_stream' });

      await store.appendToStream(streamId, events(1), { expectedRevision: 'no_stream' });
      const result = await store.appendToStream(streamId, events(1), { expectedRevision: 'stream_exists' });
      expect(result.nextExpectedRevision).toBe(1n);
    });

    it('exact revision: passes when it is the last revision, fails otherwise and on a missing stream', async () => {
      const streamId = newStream();
      const missing = await rejection(store.appendToStream(streamId, events(1), { expectedRevision: 0n }));
      expect(missing).toMatchObject({ expected: 0n, actual: 'no_stream' });

      await store.appendToStream(streamId, events(3), { expectedRevision: 'no_stream' });
      const result = await store.appendToStream(streamId, events(1), { expectedRevision: 2n });
      expect(result.nextExpectedRevision).toBe(3n);

      for (const stale of [2n, 4n]) {
        const error = await rejection(store.appendToStream(streamId, events(1), { expectedRevision: stale }));
        expect(error).toMatchObject({ code: 'wrong_expected_revision', expected: stale, actual: 3n });
      }
      expect(await store.readStream(streamId)).toHaveLength(4);
    });

    it('any: appends to a missing or an existing stream', async () => {
      const streamId = newStream();
      expect((await store.appendToStream(streamId, events(1), { expectedRevision: 'any' })).nextExpectedRevision).toBe(0n);
      expect((await store.appendToStream(streamId, events(1), { expectedRevision: 'any' })).nextExpectedRevision).toBe(1n);
    });
  });

  describe('idempotency by event id', () => {
    it('re-appending stored events succeeds without writing or checking the revision', async () => {
      const streamId = newStream();
      const batch = events(2);
      const first = await store.appendToStream(streamId, batch, { expectedRevision: 'no_stream' });
      await store.appendToStream(streamId, events(1), { expectedRevision: 1n });
      const head = await store.headPosition();

      const again = await store.appendToStream(streamId, batch, { expectedRevision: 'no_stream' });
      expect(again).toEqual({ streamId, nextExpectedRevision: 2n, position: head, idempotent: true });
      expect(first.idempotent).toBe(false);
      expect(await store.readStream(streamId)).toHaveLength(3);
      expect(await store.headPosition()).toBe(head);
    });

    it('matches ids case-insensitively, as UUIDs', async () => {
      const streamId = newStream();
      const original = event();
      await store.appendToStream(streamId, [original], { expectedRevision: 'no_stream' });
      const upper = { ...original, id: original.id.toUpperCase() };
      expect((await store.appendToStream(streamId, [upper], { expectedRevision: 'any' })).idempotent).toBe(true);
    });

    it('rejects a request in which only some events are stored: the caller view is stale', async () => {
      const streamId = newStream();
      const stored = events(2);
      await store.appendToStream(streamId, stored, { expectedRevision: 'no_stream' });
      const error = await rejection(
        store.appendToStream(streamId, [...stored, event()], { expectedRevision: 'any' }),
      );
      expect(error).toBeInstanceOf(WrongExpectedRevisionError);
      expect(error).toMatchObject({ streamId, actual: 1n });
      expect(await store.readStream(streamId)).toHaveLength(2);
    });

    it('refuses an event id stored in another stream, and an id repeated within one append', async () => {
      const stored = event();
      await store.appendToStream(newStream(), [stored], { expectedRevision: 'no_stream' });
      const elsewhere = await rejection(store.appendToStream(newStream(), [stored], { expectedRevision: 'any' }));
      expect(elsewhere).toBeInstanceOf(DuplicateEventIdError);
      expect(elsewhere).toMatchObject({ eventIds: [stored.id], retriable: false });

      const twice = event();
      const repeated = await rejection(
        store.appendMany([
          { streamId: newStream(), expectedRevision: 'any', events: [twice] },
          { streamId: newStream(), expectedRevision: 'any', events: [twice] },
        ]),
      );
      expect(repeated).toBeInstanceOf(DuplicateEventIdError);
      expect(await store.readEventsById([twice.id])).toEqual([]);
    });
  });

  describe('appendMany', () => {
    it('writes many streams in one call, returning results in request order with contiguous positions', async () => {
      const [a, b, c] = [newStream(), newStream(), newStream()];
      await store.appendToStream(b, events(2), { expectedRevision: 'no_stream' });
      const results = await store.appendMany([
        { streamId: a, expectedRevision: 'no_stream', events: events(3) },
        { streamId: b, expectedRevision: 1n, events: events(1) },
        { streamId: c, expectedRevision: 'any', events: events(2) },
      ]);
      expect(results.map((r) => [r.streamId, r.nextExpectedRevision, r.idempotent])).toEqual([
        [a, 2n, false],
        [b, 2n, false],
        [c, 1n, false],
      ]);
      expect(results[1]!.position).toBe(results[0]!.position + 1n);
      expect(results[2]!.position).toBe(results[1]!.position + 2n);
      const written = await store.readAll({ after: results[0]!.position - 3n });
      expect(written.map((e) => [e.streamId, e.revision])).toEqual([
        [a, 0n],
        [a, 1n],
        [a, 2n],
        [b, 2n],
        [c, 0n],
        [c, 1n],
      ]);
    });

    it('is all or nothing: one mismatched stream fails the call, naming every mismatch, and writes nothing', async () => {
      const [a, b, c] = [newStream(), newStream(), newStream()];
      await store.appendToStream(b, events(1), { expectedRevision: 'no_stream' });
      const head = await store.headPosition();
      const error = await rejection(
        store.appendMany([
          { streamId: a, expectedRevision: 'no_stream', events: events(2) },
          { streamId: b, expectedRevision: 5n, events: events(1) },
          { streamId: c, expectedRevision: 'stream_exists', events: events(1) },
        ]),
      );
      expect(error).toBeInstanceOf(WrongExpectedRevisionError);
      expect((error as WrongExpectedRevisionError).conflicts).toEqual([
        { streamId: b, expected: 5n, actual: 0n },
        { streamId: c, expected: 'stream_exists', actual: 'no_stream' },
      ]);
      expect(await store.headPosition()).toBe(head);
      expect((await store.readStreams([a, b, c])).get(a)).toEqual([]);
    });

    it('mixes idempotent repeats and new appends in one call', async () => {
      const [a, b] = [newStream(), newStream()];
      const stored = events(2);
      await store.appendToStream(a, stored, { expectedRevision: 'no_stream' });
      const results = await store.appendMany([
        { streamId: a, expectedRevision: 'no_stream', events: stored },
        { streamId: b, expectedRevision: 'no_stream', events: events(1) },
      ]);
      expect(results.map((r) => [r.nextExpectedRevision, r.idempotent])).toEqual([
        [1n, true],
        [0n, false],
      ]);
    });

    it('returns nothing for no requests, and refuses malformed ones before reaching PostgreSQL', async () => {
      expect(await store.appendMany([])).toEqual([]);
      const streamId = newStream();
      const invalid: [string, Promise<unknown>][] = [
        ['no events', store.appendToStream(streamId, [], { expectedRevision: 'any' })],
        ['not a UUID', store.appendToStream(streamId, [{ ...event(), id: 'usage-1' }], { expectedRevision: 'any' })],
        ['no type', store.appendToStream(streamId, [{ ...event(), type: '' }], { expectedRevision: 'any' })],
        ['negative revision', store.appendToStream(streamId, events(1), { expectedRevision: -1n })],
        ['unknown keyword', store.appendToStream(streamId, events(1), { expectedRevision: 'latest' as ExpectedRevision })],
        [
          'one stream twice',
          store.appendMany([
            { streamId, expectedRevision: 'any', events: events(1) },
            { streamId, expectedRevision: 'any', events: events(1) },
          ]),
        ],
      ];
      for (const [, attempt] of invalid) {
        expect(await rejection(attempt)).toBeInstanceOf(InvalidEventStoreRequestError);
      }
      expect(await store.readStream(streamId)).toEqual([]);
    });
  });

  describe('reads', () => {
    const streamId = `reads-${randomUUID()}`;
    const appended = Array.from({ length: 5 }, (_, i) => ({
      ...event('Counted', { i, amount: '12.5', nested: { list: [1, 'two', null, true] } }),
      metadata: { correlationId: `c-${i}` },
    }));

    beforeAll(async () => {
      await store.appendToStream(streamId, appended, { expectedRevision: 'no_stream' });
    });

    it('reads a stream forwards with every field, from a revision, up to a count', async () => {
      const all = await store.readStream(streamId);
      expect(all.map((e) => e.revision)).toEqual([0n, 1n, 2n, 3n, 4n]);
      expect(all[1]).toEqual({
        id: appended[1]!.id,
        type: 'Counted',
        streamId,
        revision: 1n,
        position: all[0]!.position + 1n,
        data: { i: 1, amount: '12.5', nested: { list: [1, 'two', null, true] } },
        metadata: { correlationId: 'c-1' },
        recordedAt: expect.any(Date),
      });
      expect(typeof all[0]!.position).toBe('bigint');
      const page = await store.readStream(streamId, { fromRevision: 2n, maxCount: 2 });
      expect(page.map((e) => e.revision)).toEqual([2n, 3n]);
    });

    it('reads a stream backwards from the end or from a revision', async () => {
      expect((await store.readStream(streamId, { direction: 'backwards', maxCount: 2 })).map((e) => e.revision)).toEqual([4n, 3n]);
      expect((await store.readStream(streamId, { direction: 'backwards', fromRevision: 1n })).map((e) => e.revision)).toEqual([
        1n,
        0n,
      ]);
    });

    it('reads a missing stream as empty, and refuses a negative count', async () => {
      expect(await store.readStream(newStream())).toEqual([]);
      expect(await store.readStream(newStream(), { direction: 'backwards' })).toEqual([]);
      expect(await rejection(store.readStream(streamId, { maxCount: -1 }))).toBeInstanceOf(InvalidEventStoreRequestError);
    });

    it('reads many streams in one call, a missing one as empty', async () => {
      const other = newStream();
      await store.appendToStream(other, events(2), { expectedRevision: 'no_stream' });
      const missing = newStream();
      const streams = await store.readStreams([streamId, missing, other]);
      expect([...streams.keys()]).toEqual([streamId, missing, other]);
      expect(streams.get(streamId)!.map((e) => e.revision)).toEqual([0n, 1n, 2n, 3n, 4n]);
      expect(streams.get(missing)).toEqual([]);
      expect(streams.get(other)).toHaveLength(2);
      expect(await store.readStreams([])).toEqual(new Map());
    });

    it('reads many streams in pages of bounded size, each stream in order and contiguous, the same events readStreams gives', async () => {
      const lengths = [1, 3, 12, 2, 2, 4, 9];
      const ids = lengths.map(() => newStream());
      await store.appendMany(ids.map((streamId, i) => ({ streamId, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
      const missing = newStream();
      const asked = [missing, ...ids, ids[0]!];

      const pages: RecordedEvent[][] = [];
      for await (const page of store.readStreamsPaged(asked, { maxPageEvents: 4 })) pages.push(page);
      // No page over 4 events; the 12- and 9-event streams span pages of their own.
      expect(Math.max(...pages.map((page) => page.length))).toBeLessThanOrEqual(4);
      const read = pages.flat();
      expect(read).toHaveLength(33);
      expect(pages.filter((page) => page.every((e) => e.streamId === ids[2])).map((page) => page.length)).toEqual([4, 4, 4]);
      expect(pages.filter((page) => page.every((e) => e.streamId === ids[6])).map((page) => page.length)).toEqual([4, 4, 1]);
      expect(new Set(read.map((e) => e.id)).size).toBe(read.length);
      // Each stream's events are one run, in revision order.
      const runs = read.map((e) => e.streamId).filter((id, i, all) => i === 0 || all[i - 1] !== id);
      expect(new Set(runs).size).toBe(runs.length);
      const whole = await store.readStreams(asked);
      for (const streamId of ids) expect(read.filter((e) => e.streamId === streamId)).toEqual(whole.get(streamId));
      expect(read.some((e) => e.streamId === missing)).toBe(false);

      const empty: RecordedEvent[][] = [];
      for await (const page of store.readStreamsPaged([])) empty.push(page);
      expect(empty).toEqual([]);
      await expect(store.readStreamsPaged(ids, { maxPageEvents: 0 })[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(
        InvalidEventStoreRequestError,
      );
    });

    it('finds stored events by id in any stream', async () => {
      const found = await store.readEventsById([appended[3]!.id, randomUUID(), appended[0]!.id.toUpperCase()]);
      expect(found.map((e) => e.id)).toEqual([appended[0]!.id, appended[3]!.id]);
      expect(await store.readEventsById([])).toEqual([]);
    });
  });

  describe('$all', () => {
    it('pages through the global log after a position, and reports the head', async () => {
      const before = await store.headPosition();
      await store.appendMany([
        { streamId: newStream(), expectedRevision: 'any', events: events(4) },
        { streamId: newStream(), expectedRevision: 'any', events: events(3) },
      ]);
      const head = await store.headPosition();
      expect(head).toBe(before + 7n);

      const pages: bigint[][] = [];
      let after = before;
      for (;;) {
        const page = await store.readAll({ after, maxCount: 3 });
        if (page.length === 0) break;
        pages.push(page.map((e) => e.position));
        after = page[page.length - 1]!.position;
      }
      expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
      expect(pages.flat()).toEqual(Array.from({ length: 7 }, (_, i) => before + 1n + BigInt(i)));
      expect(await store.readAll({ after: head })).toEqual([]);
    });
  });
});

describe('PostgreSQL event store on an empty schema', () => {
  it('has head position 0 and nothing to read', async () => {
    const db = await createTestSchema({ prefix: 'es_empty' });
    const store = createPostgresEventStore({ pool: db.pool, logger });
    try {
      expect(await store.headPosition()).toBe(0n);
      expect(await store.readAll()).toEqual([]);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});

describe('PostgreSQL event store without PostgreSQL', () => {
  it('fails with the retriable EventStoreUnavailableError', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const pool = createUnreachablePool('es-down');
    const store = createPostgresEventStore({ pool, logger });
    try {
      const error = await rejection(store.appendToStream('s', events(1), { expectedRevision: 'any' }));
      expect(error).toBeInstanceOf(EventStoreUnavailableError);
      expect(error).toMatchObject({ code: 'event_store_unavailable', retriable: true });
      expect(await rejection(store.readAll())).toBeInstanceOf(EventStoreUnavailableError);
    } finally {
      await store.close();
      await pool.end();
    }
  });
});
