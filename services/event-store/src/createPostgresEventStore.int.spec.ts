import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import type { EventStore, EventToAppend } from './eventStore';

/**
 * What PostgreSQL's store promises beyond the port (the port's behaviour is the conformance suite,
 * postgresEventStore.conformance.int.spec.ts): positions are contiguous, one per event, with no
 * gap between the events of a call; an empty schema starts at 0; a stream longer than a page of
 * readStreamsPaged has pages of its own (groupStreamsByEvents).
 */

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function events(count: number): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Tested', data: { i } }));
}

describe('PostgreSQL event store positions', () => {
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

  it('numbers a call\'s events contiguously, in request order then event order', async () => {
    const [a, b, c] = [newStream(), newStream(), newStream()];
    await store.appendToStream(b, events(2), { expectedRevision: 'no_stream' });
    const results = await store.appendMany([
      { streamId: a, expectedRevision: 'no_stream', events: events(3) },
      { streamId: b, expectedRevision: 1n, events: events(1) },
      { streamId: c, expectedRevision: 'any', events: events(2) },
    ]);
    expect(results[1]!.position).toBe(results[0]!.position + 1n);
    expect(results[2]!.position).toBe(results[1]!.position + 2n);
    const written = await store.readAll({ after: results[0]!.position - 3n });
    expect(written.map((e) => [e.streamId, e.revision, e.position])).toEqual(
      [
        [a, 0n],
        [a, 1n],
        [a, 2n],
        [b, 2n],
        [c, 0n],
        [c, 1n],
      ].map(([streamId, revision], i) => [streamId, revision, results[0]!.position - 2n + BigInt(i)]),
    );
    const stream = await store.readStream(a);
    expect(stream.map((e) => e.position)).toEqual([0n, 1n, 2n].map((i) => stream[0]!.position + i));
  });

  it('moves the head by exactly the events written; a failed or idempotent call moves nothing', async () => {
    const before = await store.headPosition();
    const batch = events(4);
    const streamId = newStream();
    await store.appendMany([
      { streamId, expectedRevision: 'any', events: batch },
      { streamId: newStream(), expectedRevision: 'any', events: events(3) },
    ]);
    const head = await store.headPosition();
    expect(head).toBe(before + 7n);
    await expect(store.appendToStream(newStream(), events(1), { expectedRevision: 0n })).rejects.toMatchObject({ code: 'wrong_expected_revision' });
    expect((await store.appendToStream(streamId, batch, { expectedRevision: 'no_stream' })).idempotent).toBe(true);
    expect(await store.headPosition()).toBe(head);
    const pages: bigint[][] = [];
    for (let after = before; ; ) {
      const page = await store.readAll({ after, maxCount: 3 });
      if (page.length === 0) break;
      pages.push(page.map((e) => e.position));
      after = page[page.length - 1]!.position;
    }
    expect(pages.flat()).toEqual(Array.from({ length: 7 }, (_, i) => before + 1n + BigInt(i)));
  });
});

describe('PostgreSQL event store paged reads', () => {
  it('gives a stream longer than a page pages of its own, and groups short streams', async () => {
    const db = await createTestSchema({ prefix: 'es_paged' });
    const store = createPostgresEventStore({ pool: db.pool, logger });
    try {
      const lengths = [1, 3, 12, 2, 2, 4, 9];
      const ids = lengths.map(() => `balance-${randomUUID()}`);
      await store.appendMany(ids.map((streamId, i) => ({ streamId, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
      const pages: string[][] = [];
      for await (const page of store.readStreamsPaged(ids, { maxPageEvents: 4 })) pages.push(page.map((e) => e.streamId));
      expect(pages.filter((page) => page.every((id) => id === ids[2])).map((page) => page.length)).toEqual([4, 4, 4]);
      expect(pages.filter((page) => page.every((id) => id === ids[6])).map((page) => page.length)).toEqual([4, 4, 1]);
      expect(pages.flat()).toHaveLength(33);
    } finally {
      await store.close();
      await db.drop();
    }
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
