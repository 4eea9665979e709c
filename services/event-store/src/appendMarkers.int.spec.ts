import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { MarkerAlreadyRecordedError, WrongExpectedRevisionError } from './errors';
import type { EventStore, EventToAppend } from './eventStore';

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

const event = (i: number): EventToAppend => ({ id: randomUUID(), type: 'Tested', data: { i } });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('append markers', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_markers' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const marker = (): string => `customer:${randomUUID()}`;

  it('records the markers with the events, and reads them back', async () => {
    const [a, b, unknown] = [marker(), marker(), marker()];
    const streamId = `s-${randomUUID()}`;
    await store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event(1)] }], { markers: [a, b, a] });
    expect(await store.readMarkers([a, b, unknown])).toEqual(new Set([a, b]));
    expect(await store.readStream(streamId)).toHaveLength(1);
  });

  it('records markers of inputs that caused no event', async () => {
    const a = marker();
    expect(await store.appendMany([], { markers: [a] })).toEqual([]);
    expect(await store.readMarkers([a])).toEqual(new Set([a]));
  });

  it('writes nothing when a marker is already recorded, and names it', async () => {
    const [done, fresh] = [marker(), marker()];
    await store.appendMany([], { markers: [done] });
    const streamId = `s-${randomUUID()}`;
    const error = await rejection(
      store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event(1)] }], { markers: [fresh, done] }),
    );
    expect(error).toBeInstanceOf(MarkerAlreadyRecordedError);
    expect(error).toMatchObject({ markers: [done], retriable: true, code: 'marker_already_recorded' });
    expect(await store.readStream(streamId)).toEqual([]);
    expect(await store.readMarkers([fresh])).toEqual(new Set());
  });

  it('records no marker when the events are refused', async () => {
    const a = marker();
    const streamId = `s-${randomUUID()}`;
    await store.appendToStream(streamId, [event(0)], { expectedRevision: 'no_stream' });
    const error = await rejection(store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event(1)] }], { markers: [a] }));
    expect(error).toBeInstanceOf(WrongExpectedRevisionError);
    expect(await store.readMarkers([a])).toEqual(new Set());
  });

  it('lets one of two racing appends with the same marker win', async () => {
    const a = marker();
    const outcomes = await Promise.allSettled(
      [0, 1].map((i) => store.appendMany([{ streamId: `s-${randomUUID()}`, expectedRevision: 'no_stream', events: [event(i)] }], { markers: [a] })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const lost = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(lost?.reason).toBeInstanceOf(MarkerAlreadyRecordedError);
  });

  it('keeps a marker 16 bytes long, whatever the length of what it marks', async () => {
    const long = `${marker()}:${'x'.repeat(10_000)}`;
    await store.appendMany([], { markers: [long] });
    const { rows } = await db.pool.query<{ bytes: number }>('SELECT max(octet_length(marker_hash)) AS bytes FROM append_markers');
    expect(rows[0]!.bytes).toBe(16);
    expect(await store.readMarkers([long])).toEqual(new Set([long]));
  });
});
