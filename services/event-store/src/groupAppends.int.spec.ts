import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { MarkerAlreadyRecordedError, WrongExpectedRevisionError } from './errors';
import type { AppendRequest, EventStore } from './eventStore';
import { groupAppends } from './groupAppends';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

const charges = (streamId: string, count: number, expectedRevision: AppendRequest['expectedRevision'] = 'no_stream'): AppendRequest => ({
  streamId,
  expectedRevision,
  events: Array.from({ length: count }, (_, n) => ({ id: randomUUID(), type: 'Charged', data: { n: String(n) } })),
});

/**
 * groupAppends on the real store: the calls of several writers (the consumer's partitions) that
 * meet an append in flight go as one transaction, and each writer still gets its own outcome.
 */
describe('grouped appends on PostgreSQL', () => {
  let db: TestSchema;
  let store: EventStore;
  let appendCalls = 0;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_grouped' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const counted = (): Pick<EventStore, 'appendMany'> => ({
    appendMany: (requests, options) => {
      appendCalls += 1;
      return store.appendMany(requests, options);
    },
  });

  it('writes six writers in fewer transactions, each with its own results, markers and positions in order', async () => {
    const grouped = groupAppends(counted());
    appendCalls = 0;
    const streams = Array.from({ length: 6 }, () => `balance-${randomUUID()}`);
    const markers = streams.map((stream) => `customer:${stream}:u1`);
    const results = await Promise.all(streams.map((stream, i) => grouped.appendMany([charges(stream, i + 1)], { markers: [markers[i]!] })));

    // The first went alone; the five that met it in flight, as one.
    expect(appendCalls).toBe(2);
    expect(results.map((result) => result.map(({ streamId, nextExpectedRevision }) => [streamId, nextExpectedRevision]))).toEqual(
      streams.map((stream, i) => [[stream, BigInt(i)]]),
    );
    for (const [i, stream] of streams.entries()) {
      const read = await store.readStream(stream);
      expect(read.map((event) => event.data)).toEqual(Array.from({ length: i + 1 }, (_, n) => ({ n: String(n) })));
      expect(read.at(-1)!.position).toBe(results[i]![0]!.position);
    }
    expect(await store.readMarkers(markers)).toEqual(new Set(markers));
  });

  it('gives a conflict and an already recorded marker to their own writers only; the rest of the group is written', async () => {
    const [taken, stale, fine1, fine2] = Array.from({ length: 4 }, () => `balance-${randomUUID()}`) as [string, string, string, string];
    const usedMarker = `customer:${taken}:used`;
    await store.appendMany([charges(stale, 2)], { markers: [usedMarker] });
    const grouped = groupAppends(counted());
    appendCalls = 0;

    const holder = grouped.appendMany([charges(`balance-${randomUUID()}`, 1)]);
    const outcomes = await Promise.allSettled([
      grouped.appendMany([charges(fine1, 3)], { markers: [`customer:${fine1}:u`] }),
      grouped.appendMany([charges(taken, 1)], { markers: [usedMarker] }),
      grouped.appendMany([charges(stale, 1, 0n)]),
      grouped.appendMany([charges(fine2, 1)]),
    ]);
    await holder;

    expect(outcomes[0]).toMatchObject({ status: 'fulfilled', value: [{ streamId: fine1, nextExpectedRevision: 2n }] });
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: expect.any(MarkerAlreadyRecordedError) });
    expect(outcomes[2]).toMatchObject({ status: 'rejected', reason: expect.any(WrongExpectedRevisionError) });
    expect(outcomes[3]).toMatchObject({ status: 'fulfilled', value: [{ streamId: fine2, nextExpectedRevision: 0n }] });
    // The holder alone, the failed group of four, then each of the four alone.
    expect(appendCalls).toBe(6);
    expect(await store.readStream(taken)).toEqual([]);
    expect(await store.readStream(stale)).toHaveLength(2);
    expect(await store.readStream(fine1)).toHaveLength(3);
    expect(await store.readMarkers([`customer:${fine1}:u`])).toEqual(new Set([`customer:${fine1}:u`]));
  });
});
