import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { WrongExpectedRevisionError } from './errors';
import type { AppendRequest, EventStore, EventToAppend } from './eventStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** The size of the metering consumer's largest batches, and more: what 010_set_based_append.sql made linear. */
const LARGE = 5_000;

function events(count: number, tag: string): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Tested', data: { tag, i }, metadata: { i } }));
}

describe('PostgreSQL event store, large single calls', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_large' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it(`appends ${LARGE} events to one stream in one call: revisions and positions in order; a repeat is idempotent`, async () => {
    const streamId = `long-${randomUUID()}`;
    const batch = events(LARGE, 'first');
    const headBefore = await store.headPosition();

    const [result] = await store.appendMany([{ streamId, events: batch, expectedRevision: 'no_stream' }]);
    expect(result).toEqual({ streamId, nextExpectedRevision: BigInt(LARGE - 1), position: headBefore + BigInt(LARGE), idempotent: false });

    const stored = await store.readStream(streamId);
    expect(stored.map((e) => e.id)).toEqual(batch.map((e) => e.id));
    expect(stored.map((e) => e.revision)).toEqual(batch.map((_, i) => BigInt(i)));
    expect(stored.map((e) => e.position)).toEqual(batch.map((_, i) => headBefore + 1n + BigInt(i)));
    expect(stored.map((e) => e.data)).toEqual(batch.map((e) => e.data));
    expect(stored.map((e) => e.metadata)).toEqual(batch.map((e) => e.metadata));

    // Stored ids again, with a revision that would now be wrong: nothing written, nothing checked.
    const [repeat] = await store.appendMany([{ streamId, events: batch, expectedRevision: 'no_stream' }]);
    expect(repeat).toEqual({ ...result, idempotent: true });
    expect(await store.headPosition()).toBe(headBefore + BigInt(LARGE));

    // And a second large call continues the stream where the first ended.
    const more = events(LARGE, 'second');
    const [next] = await store.appendMany([{ streamId, events: more, expectedRevision: BigInt(LARGE - 1) }]);
    expect(next!.nextExpectedRevision).toBe(BigInt(2 * LARGE - 1));
    expect(next!.position).toBe(headBefore + BigInt(2 * LARGE));
    const tail = await store.readStream(streamId, { fromRevision: BigInt(LARGE) });
    expect(tail.map((e) => e.id)).toEqual(more.map((e) => e.id));
  });

  it(`appends ${LARGE} streams of one event in one call: results in request order, contiguous positions; a repeat is idempotent`, async () => {
    const requests: AppendRequest[] = Array.from({ length: LARGE }, (_, i) => ({
      streamId: `short-${i}-${randomUUID()}`,
      events: events(1, `short-${i}`),
      expectedRevision: 'no_stream',
    }));
    const headBefore = await store.headPosition();

    const results = await store.appendMany(requests);
    expect(results).toEqual(
      requests.map((request, i) => ({
        streamId: request.streamId,
        nextExpectedRevision: 0n,
        position: headBefore + 1n + BigInt(i),
        idempotent: false,
      })),
    );
    const read = await store.readStreams(requests.map((request) => request.streamId));
    for (const [i, request] of requests.entries()) {
      const [only, ...rest] = read.get(request.streamId)!;
      expect(rest).toEqual([]);
      expect(only).toMatchObject({ id: request.events[0]!.id, revision: 0n, position: headBefore + 1n + BigInt(i) });
    }

    const repeats = await store.appendMany(requests);
    expect(repeats).toEqual(results.map((result) => ({ ...result, idempotent: true })));
    expect(await store.headPosition()).toBe(headBefore + BigInt(LARGE));
  });

  it(`fails a call of ${LARGE} streams whole when one expected revision is wrong, naming only that stream`, async () => {
    const requests: AppendRequest[] = Array.from({ length: LARGE }, (_, i) => ({
      streamId: `mixed-${i}-${randomUUID()}`,
      events: events(1, `mixed-${i}`),
      expectedRevision: i === LARGE - 1 ? 0n : 'no_stream',
    }));
    const headBefore = await store.headPosition();

    const error = await store.appendMany(requests).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(WrongExpectedRevisionError);
    expect((error as WrongExpectedRevisionError).conflicts).toEqual([
      { streamId: requests[LARGE - 1]!.streamId, expected: 0n, actual: 'no_stream' },
    ]);
    expect(await store.headPosition()).toBe(headBefore);
    expect((await store.readStreams([requests[0]!.streamId])).get(requests[0]!.streamId)).toEqual([]);
  });
});
