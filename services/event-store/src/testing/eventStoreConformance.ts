import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitFor } from '@tally/test-support';
import {
  DuplicateEventIdError,
  EventStoreUnavailableError,
  InvalidEventStoreRequestError,
  MarkerAlreadyRecordedError,
  StoredWithoutMarkerError,
  WrongExpectedRevisionError,
} from '../errors';
import type { AppendRequest, EventStore, EventToAppend, ExpectedRevision, RecordedEvent, StoredPayload, SubscribeToAllOptions, Subscription } from '../eventStore';

/**
 * The event store port's behaviour, written once and run against every adapter
 * (postgresEventStore.conformance.int.spec.ts, eventStoreDb.conformance.int.spec.ts). Only what the
 * port promises is asserted: positions strictly increase, but need not be contiguous; $all may
 * hold other tests' events (a shared server), so each test looks at its own streams.
 */
export interface ConformanceTarget {
  /**
   * Nobody else writes to the store while the suite runs (a schema of its own, an in-memory
   * model): the head then moves only with this suite's writes, and that is asserted too.
   */
  readonly isolated: boolean;
  /** Positions are contiguous: one per event, no gap within or between calls (PostgreSQL's sequence). */
  readonly contiguousPositions: boolean;
  /** Opens the store under test; `close` ends it and whatever it needs. */
  open(): Promise<{ readonly store: EventStore; close(): Promise<void> }>;
  /** A store whose server cannot be reached. */
  unreachable(): Promise<{ readonly store: EventStore; close(): Promise<void> }>;
}

const event = (type = 'Tested', data: EventToAppend['data'] = {}): EventToAppend => ({ id: randomUUID(), type, data });
const events = (count: number, type = 'Tested'): EventToAppend[] => Array.from({ length: count }, (_, i) => event(type, { i }));
const newStream = (): string => `conformance-${randomUUID()}`;
/** What the port promises of a paged read's event, whatever more a store hands out. */
const placedPayload = ({ streamId, revision, position, type, data }: StoredPayload) => ({ streamId, revision, position, type, data });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** Polls often: these waits are for events that arrive within milliseconds when things work. */
const until = (condition: () => boolean | Promise<boolean>, description: string, timeoutMs = 30_000) => waitFor(condition, { description, timeoutMs, intervalMs: 10 });

function strictlyIncreasing(positions: readonly bigint[]): boolean {
  return positions.every((position, i) => i === 0 || position > positions[i - 1]!);
}

/** A subscription that records what it receives, for assertions; only events of `streams` (when given) are kept. */
function record(store: EventStore, options: Partial<SubscribeToAllOptions>, streams?: ReadonlySet<string>) {
  const received: RecordedEvent[] = [];
  const errors: unknown[] = [];
  const caughtUp: bigint[] = [];
  const subscription: Subscription = store.subscribeToAll({
    onEvents: async (batch) => {
      received.push(...batch.filter((e) => streams === undefined || streams.has(e.streamId)));
    },
    onError: (error) => errors.push(error),
    onCaughtUp: (position) => caughtUp.push(position),
    ...options,
  });
  return { received, errors, caughtUp, subscription };
}

export function describeEventStoreConformance(name: string, target: ConformanceTarget): void {
  describe(`event store conformance: ${name}`, () => {
    let store: EventStore;
    let close: () => Promise<void>;

    beforeAll(async () => {
      ({ store, close } = await target.open());
    });

    afterAll(async () => {
      await close?.();
    });

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
        expect((await store.appendToStream(streamId, events(1), { expectedRevision: 'stream_exists' })).nextExpectedRevision).toBe(1n);
      });

      it('exact revision: passes when it is the last revision, fails otherwise and on a missing stream', async () => {
        const streamId = newStream();
        expect(await rejection(store.appendToStream(streamId, events(1), { expectedRevision: 0n }))).toMatchObject({ expected: 0n, actual: 'no_stream' });
        await store.appendToStream(streamId, events(3), { expectedRevision: 'no_stream' });
        expect((await store.appendToStream(streamId, events(1), { expectedRevision: 2n })).nextExpectedRevision).toBe(3n);
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
        const last = await store.appendToStream(streamId, events(1), { expectedRevision: 1n });
        const head = await store.headPosition();
        const again = await store.appendToStream(streamId, batch, { expectedRevision: 'no_stream' });
        expect(again).toEqual({ streamId, nextExpectedRevision: 2n, position: last.position, idempotent: true });
        if (target.isolated) expect([head, await store.headPosition()]).toEqual([last.position, last.position]);
        expect(first.idempotent).toBe(false);
        expect(await store.readStream(streamId)).toHaveLength(3);
        // Stored ids with `any` too: the store's own record, not a best-effort cache.
        expect((await store.appendToStream(streamId, batch, { expectedRevision: 'any' })).idempotent).toBe(true);
        expect(await store.readStream(streamId)).toHaveLength(3);
      });

      it('matches ids case-insensitively, as UUIDs', async () => {
        const streamId = newStream();
        const original = event();
        await store.appendToStream(streamId, [original], { expectedRevision: 'no_stream' });
        expect((await store.appendToStream(streamId, [{ ...original, id: original.id.toUpperCase() }], { expectedRevision: 'any' })).idempotent).toBe(true);
      });

      it('rejects a request in which only some events are stored: the caller view is stale', async () => {
        const streamId = newStream();
        const stored = events(2);
        await store.appendToStream(streamId, stored, { expectedRevision: 'no_stream' });
        const error = await rejection(store.appendToStream(streamId, [...stored, event()], { expectedRevision: 'any' }));
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
      it('writes many streams in one call, returning results in request order, positions following request order', async () => {
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
        expect(strictlyIncreasing(results.map((r) => r.position))).toBe(true);
        const streams = await store.readStreams([a, b, c]);
        const written = [...streams.get(a)!, streams.get(b)![2]!, ...streams.get(c)!];
        expect(written.map((e) => [e.streamId, e.revision])).toEqual([
          [a, 0n],
          [a, 1n],
          [a, 2n],
          [b, 2n],
          [c, 0n],
          [c, 1n],
        ]);
        expect(strictlyIncreasing(written.map((e) => e.position))).toBe(true);
        expect(results.map((r) => r.position)).toEqual([written[2]!.position, written[3]!.position, written[5]!.position]);
        if (target.contiguousPositions) {
          expect(written.map((e) => e.position)).toEqual(written.map((_, i) => written[0]!.position + BigInt(i)));
          expect((await store.readAll({ after: written[0]!.position - 1n })).map((e) => e.id)).toEqual(written.map((e) => e.id));
        }
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
        const streams = await store.readStreams([a, b, c]);
        expect([streams.get(a), streams.get(b)!.length, streams.get(c)]).toEqual([[], 1, []]);
        if (target.isolated) expect(await store.headPosition()).toBe(head);
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

      it('returns nothing for no requests, and refuses malformed ones before writing anything', async () => {
        expect(await store.appendMany([])).toEqual([]);
        const streamId = newStream();
        const invalid: Promise<unknown>[] = [
          store.appendToStream(streamId, [], { expectedRevision: 'any' }),
          store.appendToStream(streamId, [{ ...event(), id: 'usage-1' }], { expectedRevision: 'any' }),
          store.appendToStream(streamId, [{ ...event(), type: '' }], { expectedRevision: 'any' }),
          store.appendToStream(streamId, events(1), { expectedRevision: -1n }),
          store.appendToStream(streamId, events(1), { expectedRevision: 'latest' as ExpectedRevision }),
          store.appendMany([
            { streamId, expectedRevision: 'any', events: events(1) },
            { streamId, expectedRevision: 'any', events: events(1) },
          ]),
        ];
        for (const attempt of invalid) expect(await rejection(attempt)).toBeInstanceOf(InvalidEventStoreRequestError);
        expect(await store.readStream(streamId)).toEqual([]);
      });
    });

    describe('markers', () => {
      const marker = (): string => `customer:${randomUUID()}`;

      it('records the markers with the events, and reads them back', async () => {
        const [a, b, unknown] = [marker(), marker(), marker()];
        const streamId = newStream();
        await store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event()] }], { markers: [a, b, a] });
        expect(await store.readMarkers([a, b, unknown])).toEqual(new Set([a, b]));
        expect(await store.readStream(streamId)).toHaveLength(1);
      });

      it('reads recorded markers and stored events in one call, as readMarkers and readEventsById do', async () => {
        const [a, b, unknown] = [marker(), marker(), marker()];
        const [first, second] = [newStream(), newStream()];
        const [e1, e2, e3] = [event(), event(), event()];
        await store.appendMany([{ streamId: first, expectedRevision: 'no_stream', events: [e1, e2] }], { markers: [a] });
        await store.appendMany([{ streamId: second, expectedRevision: 'no_stream', events: [e3] }], { markers: [b] });

        const traces = await store.readAppendTraces([unknown, b, a], [e3.id, randomUUID(), e1.id]);
        expect(traces.markers).toEqual(new Set([a, b]));
        expect(traces.events.map((e) => [e.id, e.streamId, e.revision])).toEqual([
          [e1.id, first, 0n],
          [e3.id, second, 0n],
        ]);
        expect(traces.events).toEqual(await store.readEventsById([e1.id, e3.id]));

        expect(await store.readAppendTraces([a], [])).toEqual({ markers: new Set([a]), events: [] });
        expect((await store.readAppendTraces([unknown], [e2.id])).events.map((e) => e.id)).toEqual([e2.id]);
        expect(await store.readAppendTraces([unknown], [randomUUID()])).toEqual({ markers: new Set(), events: [] });
        expect(await store.readAppendTraces([], [])).toEqual({ markers: new Set(), events: [] });
      });

      it('records markers of inputs that caused no event, whatever their length', async () => {
        const [a, long] = [marker(), `${marker()}:${'x'.repeat(10_000)}`];
        expect(await store.appendMany([], { markers: [a, long] })).toEqual([]);
        expect(await store.readMarkers([a, long])).toEqual(new Set([a, long]));
      });

      it('writes nothing when a marker is already recorded, and names it', async () => {
        const [done, fresh] = [marker(), marker()];
        await store.appendMany([], { markers: [done] });
        const streamId = newStream();
        const error = await rejection(store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event()] }], { markers: [fresh, done] }));
        expect(error).toBeInstanceOf(MarkerAlreadyRecordedError);
        expect(error).toMatchObject({ markers: [done], retriable: true, code: 'marker_already_recorded' });
        expect(await store.readStream(streamId)).toEqual([]);
        expect(await store.readMarkers([fresh])).toEqual(new Set());
      });

      it('writes nothing when a marked append holds events stored already, and names them', async () => {
        // Stored by a writer that recorded no marker; the same request again, marked, alongside a new stream's.
        const [a, b] = [marker(), marker()];
        const [stored, other] = [newStream(), newStream()];
        const earlier = event();
        await store.appendToStream(stored, [earlier], { expectedRevision: 'no_stream' });
        const error = await rejection(
          store.appendMany(
            [
              { streamId: stored, expectedRevision: 'no_stream', events: [earlier] },
              { streamId: other, expectedRevision: 'no_stream', events: [event()] },
            ],
            { markers: [a, b] },
          ),
        );
        expect(error).toBeInstanceOf(StoredWithoutMarkerError);
        expect(error).toMatchObject({ eventIds: [earlier.id], retriable: false, code: 'stored_without_marker' });
        expect(await store.readStream(other)).toEqual([]);
        expect(await store.readMarkers([a, b])).toEqual(new Set());
        // Unmarked, the same request is the idempotent repeat it always was.
        const [result] = await store.appendMany([{ streamId: stored, expectedRevision: 'no_stream', events: [earlier] }]);
        expect(result).toMatchObject({ idempotent: true });
      });

      it('records no marker when the events are refused', async () => {
        const a = marker();
        const streamId = newStream();
        await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
        const error = await rejection(store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event()] }], { markers: [a] }));
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect(await store.readMarkers([a])).toEqual(new Set());
      });

      it('lets one of two racing appends with the same marker win', async () => {
        const a = marker();
        const outcomes = await Promise.allSettled(
          [0, 1].map((i) => store.appendMany([{ streamId: newStream(), expectedRevision: 'no_stream', events: [event('Tested', { i })] }], { markers: [a] })),
        );
        expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
        const lost = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
        expect(lost?.reason).toBeInstanceOf(MarkerAlreadyRecordedError);
      });

      it('lets an append of markers alone and an append of events with the same marker race: exactly one records it, the loser writes nothing', async () => {
        // A purchase's key fence against the refusal of its twin (LedgerService.refusePurchase):
        // many rounds at once, so that each side wins some.
        const rounds = await Promise.all(
          Array.from({ length: 20 }, async () => {
            const [a, streamId] = [marker(), newStream()];
            const [alone, withEvents] = await Promise.allSettled([
              store.appendMany([], { markers: [a] }),
              store.appendMany([{ streamId, expectedRevision: 'no_stream', events: [event()] }], { markers: [a] }),
            ]);
            return { a, streamId, alone, withEvents };
          }),
        );
        for (const { a, streamId, alone, withEvents } of rounds) {
          expect([alone.status, withEvents.status].filter((status) => status === 'fulfilled')).toHaveLength(1);
          const lost = alone.status === 'rejected' ? alone : (withEvents as PromiseRejectedResult);
          expect(lost.reason).toBeInstanceOf(MarkerAlreadyRecordedError);
          expect(lost.reason).toMatchObject({ markers: [a] });
          expect(await store.readMarkers([a])).toEqual(new Set([a]));
          // The events are stored exactly when their append won.
          expect(await store.readStream(streamId)).toHaveLength(withEvents.status === 'fulfilled' ? 1 : 0);
        }
      });
    });

    describe('appendExclusively', () => {
      it('appends what work decided on the streams it read; a racing writer never overwrites it', async () => {
        const streamId = newStream();
        await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
        let racing: Promise<unknown> | undefined;
        const { results, value } = await store.appendExclusively(async (reader) => {
          const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
          // Another writer that read the same revision appends meanwhile (once).
          racing ??= store.appendToStream(streamId, [event('Racer')], { expectedRevision: last!.revision }).catch((error: unknown) => error);
          return { requests: [{ streamId, expectedRevision: last!.revision, events: [event('Exclusive')] }], value: last!.revision };
        });
        expect(results).toEqual([expect.objectContaining({ streamId, nextExpectedRevision: value + 1n, idempotent: false })]);
        const racer = await racing;
        const types = (await store.readStream(streamId)).map((recorded) => recorded.type);
        // Held back (PostgreSQL: it conflicts after our commit), or first (EventStoreDB: our work ran again on its write).
        if (racer instanceof WrongExpectedRevisionError) expect(types).toEqual(['Tested', 'Exclusive']);
        else expect(types).toEqual(['Tested', 'Racer', 'Exclusive']);
      });

      it('never fails with a conflict, however busy the stream: what work read is what it appends after', async () => {
        const streamId = newStream();
        await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
        const busy = Promise.all(
          Array.from({ length: 4 }, async (_, w) => {
            for (let i = 0; i < 10; i += 1) await store.appendToStream(streamId, [event('Busy', { w, i })], { expectedRevision: 'any' });
          }),
        );
        const exclusive = await Promise.all(
          Array.from({ length: 4 }, () =>
            store.appendExclusively(async (reader) => {
              const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
              return { requests: [{ streamId, expectedRevision: last!.revision, events: [event('Exclusive')] }], value: last!.revision };
            }),
          ),
        );
        await busy;
        const stored = await store.readStream(streamId);
        expect(stored).toHaveLength(1 + 40 + 4);
        for (const { results, value } of exclusive) {
          expect(results[0]!.nextExpectedRevision).toBe(value + 1n);
          expect(stored[Number(value) + 1]!.type).toBe('Exclusive');
        }
      });

      it('records the markers given in the same transaction, and refuses markers already recorded, appending nothing', async () => {
        const streamId = newStream();
        const marker = `exclusive:${randomUUID()}`;
        const work = async () => ({ requests: [{ streamId, expectedRevision: 'any' as const, events: [event('Exclusive')] }], value: undefined });
        await store.appendExclusively(work, { markers: [marker] });
        expect(await store.readMarkers([marker])).toEqual(new Set([marker]));
        await expect(store.appendExclusively(work, { markers: [marker] })).rejects.toBeInstanceOf(MarkerAlreadyRecordedError);
        expect(await store.readStream(streamId)).toHaveLength(1);
      });

      it('appends nothing when the work fails', async () => {
        const streamId = newStream();
        await expect(
          store.appendExclusively(async () => {
            throw new Error('decided against it');
          }),
        ).rejects.toThrow('decided against it');
        await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
        expect(await store.readStream(streamId)).toHaveLength(1);
      });
    });

    describe('reads', () => {
      const streamId = newStream();
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
        expect(strictlyIncreasing(all.map((e) => e.position))).toBe(true);
        if (target.contiguousPositions) expect(all.map((e) => e.position)).toEqual(all.map((_, i) => all[0]!.position + BigInt(i)));
        expect(all[1]).toEqual({
          id: appended[1]!.id,
          type: 'Counted',
          streamId,
          revision: 1n,
          position: expect.any(BigInt),
          data: { i: 1, amount: '12.5', nested: { list: [1, 'two', null, true] } },
          metadata: { correlationId: 'c-1' },
          recordedAt: expect.any(Date),
        });
        expect((await store.readStream(streamId, { fromRevision: 2n, maxCount: 2 })).map((e) => e.revision)).toEqual([2n, 3n]);
      });

      it('reads a stream backwards from the end or from a revision', async () => {
        expect((await store.readStream(streamId, { direction: 'backwards', maxCount: 2 })).map((e) => e.revision)).toEqual([4n, 3n]);
        expect((await store.readStream(streamId, { direction: 'backwards', fromRevision: 1n })).map((e) => e.revision)).toEqual([1n, 0n]);
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

      it('reads many streams in pages of bounded size, each stream in order and contiguous, the payloads and places of the events readStreams gives', async () => {
        const lengths = [1, 3, 12, 2, 2, 4, 9];
        const ids = lengths.map(() => newStream());
        await store.appendMany(ids.map((id, i) => ({ streamId: id, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
        const missing = newStream();
        const asked = [missing, ...ids, ids[0]!];
        const pages: StoredPayload[][] = [];
        for await (const page of store.readStreamsPaged(asked, { maxPageEvents: 4 })) pages.push(page);
        expect(Math.max(...pages.map((page) => page.length))).toBeLessThanOrEqual(4);
        // What the port promises of a page, whatever more a store hands out.
        const read = pages.flat().map(placedPayload);
        expect(read).toHaveLength(33);
        expect(new Set(read.map((e) => e.position)).size).toBe(read.length);
        const runs = read.map((e) => e.streamId).filter((id, i, all) => i === 0 || all[i - 1] !== id);
        expect(new Set(runs).size).toBe(runs.length);
        const whole = await store.readStreams(asked);
        for (const id of ids) {
          const expected = whole.get(id)!.map(placedPayload);
          expect(read.filter((e) => e.streamId === id)).toEqual(expected);
        }
        expect(read.some((e) => e.streamId === missing)).toBe(false);

        const empty: StoredPayload[][] = [];
        for await (const page of store.readStreamsPaged([])) empty.push(page);
        expect(empty).toEqual([]);
        await expect(store.readStreamsPaged(ids, { maxPageEvents: 0 })[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(InvalidEventStoreRequestError);
      });

      it('reads many streams from given revisions, in one page or in several, the tails readStreams gives', async () => {
        const lengths = [5, 2, 7, 3];
        const ids = lengths.map(() => newStream());
        await store.appendMany(ids.map((id, i) => ({ streamId: id, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
        // From the middle, from past the end (nothing to read), from 0 and, unlisted, from the start.
        const fromRevisions = new Map([
          [ids[0]!, 3n],
          [ids[1]!, 2n],
          [ids[2]!, 0n],
        ]);
        const whole = await store.readStreams(ids);
        const expected = ids.flatMap((id) =>
          whole
            .get(id)!
            .filter((e) => e.revision >= (fromRevisions.get(id) ?? 0n))
            .map(placedPayload),
        );
        // 2 + 0 + 7 + 3 = 12 events: one page of 12 or more, pages of at most 5 otherwise.
        for (const maxPageEvents of [12, 100, 5]) {
          const pages: StoredPayload[][] = [];
          for await (const page of store.readStreamsPaged([...ids, newStream()], { maxPageEvents, fromRevisions })) pages.push(page);
          if (maxPageEvents >= 12) expect(pages).toHaveLength(1);
          else expect(pages.length).toBeGreaterThanOrEqual(3);
          expect(Math.max(...pages.map((page) => page.length))).toBeLessThanOrEqual(maxPageEvents);
          const read = pages.flat().map(placedPayload);
          expect(new Set(read.map((e) => e.position)).size).toBe(read.length);
          for (const id of ids) expect(read.filter((e) => e.streamId === id)).toEqual(expected.filter((e) => e.streamId === id));
          expect(read).toHaveLength(12);
        }
      });

      it('finds stored events by id in any stream', async () => {
        const found = await store.readEventsById([appended[3]!.id, randomUUID(), appended[0]!.id.toUpperCase()]);
        expect(found.map((e) => e.id)).toEqual([appended[0]!.id, appended[3]!.id]);
        expect(await store.readEventsById([])).toEqual([]);
      });
    });

    describe('payloads', () => {
      it('keeps unicode, deep JSON and a 512 kB payload exactly', async () => {
        const streamId = newStream();
        const text = 'zażółć gęślą jaźń — 東京 — 🧾💳 — \u00e9\u0301 — "quoted" \\ back';
        const big = 'x'.repeat(512 * 1024);
        const payloads: EventToAppend[] = [
          { id: randomUUID(), type: 'Ünicode✓', data: { text, list: [text, { deeper: [1.5, -2, 0, null, false] }] }, metadata: { note: text } },
          { id: randomUUID(), type: 'Large', data: { big } },
        ];
        await store.appendToStream(streamId, payloads, { expectedRevision: 'no_stream' });
        const stored = await store.readStream(streamId);
        expect(stored.map((e) => [e.type, e.data, e.metadata])).toEqual(payloads.map((e) => [e.type, e.data, e.metadata ?? {}]));
      });
    });

    describe('large streams', () => {
      const LARGE = 2_000;

      it(`appends ${LARGE} events to one stream in one call, in order; a repeat is idempotent; pages read it whole`, async () => {
        const streamId = newStream();
        const batch = events(LARGE);
        const [result] = await store.appendMany([{ streamId, events: batch, expectedRevision: 'no_stream' }]);
        expect(result).toMatchObject({ streamId, nextExpectedRevision: BigInt(LARGE - 1), idempotent: false });
        const stored = await store.readStream(streamId);
        expect(stored.map((e) => e.id)).toEqual(batch.map((e) => e.id));
        expect(stored.map((e) => e.revision)).toEqual(batch.map((_, i) => BigInt(i)));
        expect(strictlyIncreasing(stored.map((e) => e.position))).toBe(true);
        expect(result!.position).toBe(stored.at(-1)!.position);
        const [repeat] = await store.appendMany([{ streamId, events: batch, expectedRevision: 'no_stream' }]);
        expect(repeat).toEqual({ ...result, idempotent: true });
        const pages: StoredPayload[][] = [];
        for await (const page of store.readStreamsPaged([streamId], { maxPageEvents: 700 })) pages.push(page);
        expect(pages.map((page) => page.length)).toEqual([700, 700, 600]);
        expect(pages.flat().map((e) => e.revision)).toEqual(batch.map((_, i) => BigInt(i)));
      });
    });

    describe('$all', () => {
      it('pages through the global log after a position, and reports the head', async () => {
        const [a, b] = [newStream(), newStream()];
        const mine = new Set([a, b]);
        const before = await store.headPosition();
        await store.appendMany([
          { streamId: a, expectedRevision: 'any', events: events(4) },
          { streamId: b, expectedRevision: 'any', events: events(3) },
        ]);
        const head = await store.headPosition();
        expect(head).toBeGreaterThan(before);
        if (target.contiguousPositions && target.isolated) expect(head).toBe(before + 7n);
        const seen: RecordedEvent[] = [];
        let after = before;
        // Until the log ends, or (on a shared server, where others may keep writing) all 7 are seen.
        while (seen.filter((e) => mine.has(e.streamId)).length < 7 || target.isolated) {
          const page = await store.readAll({ after, maxCount: 3 });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          expect(page[0]!.position).toBeGreaterThan(after);
          seen.push(...page);
          after = page[page.length - 1]!.position;
        }
        expect(strictlyIncreasing(seen.map((e) => e.position))).toBe(true);
        if (target.isolated) expect(seen.map((e) => e.streamId).every((streamId) => mine.has(streamId))).toBe(true);
        if (target.contiguousPositions && target.isolated) expect(seen.map((e) => e.position)).toEqual(seen.map((_, i) => before + 1n + BigInt(i)));
        const streams = await store.readStreams([a, b]);
        expect(seen.filter((e) => mine.has(e.streamId)).map((e) => e.id)).toEqual([...streams.get(a)!, ...streams.get(b)!].map((e) => e.id));
        expect(seen.filter((e) => mine.has(e.streamId)).at(-1)!.position).toBeLessThanOrEqual(head);
        // Past the last event there is nothing (on a shared server, only while nobody else writes).
        if (target.isolated) expect(await store.readAll({ after, maxCount: 10 })).toEqual([]);
      });

      it('pages through the payloads and places of the same events as readAll, the same pages', async () => {
        const [a, b] = [newStream(), newStream()];
        const before = await store.headPosition();
        await store.appendMany([
          { streamId: a, expectedRevision: 'any', events: events(3) },
          { streamId: b, expectedRevision: 'any', events: events(2) },
        ]);
        await store.appendToStream(a, events(1), { expectedRevision: 'any' });
        const payloadOf = ({ streamId, revision, position, type, data }: StoredPayload) => ({ streamId, revision, position, type, data });
        // Page by page from the same positions, until the events appended here were all seen.
        const mine = new Set([a, b]);
        let seen = 0;
        for (let after = before; seen < 6; ) {
          const [whole, payloads] = await Promise.all([store.readAll({ after, maxCount: 4 }), store.readAllPayloads({ after, maxCount: 4 })]);
          expect(whole.length).toBeGreaterThan(0);
          // On a shared server others may append between the two reads: compare what both hold.
          const common = Math.min(whole.length, payloads.length);
          expect(payloads.slice(0, common).map(payloadOf)).toEqual(whole.slice(0, common).map(payloadOf));
          seen += whole.slice(0, common).filter((e) => mine.has(e.streamId)).length;
          after = whole[common - 1]!.position;
        }
        expect(seen).toBe(6);
        if (target.isolated) expect(await store.readAllPayloads({ after: await store.headPosition(), maxCount: 10 })).toEqual([]);
      });
    });

    describe('subscribeToAll', () => {
      it('catches up from a checkpoint in pages, reports it, then goes live', async () => {
        const from = await store.headPosition();
        const streamId = newStream();
        const existing = events(7);
        await store.appendToStream(streamId, existing, { expectedRevision: 'no_stream' });
        const { received, caughtUp, errors, subscription } = record(store, { after: from, batchSize: 3 }, new Set([streamId]));
        try {
          await until(() => caughtUp.length >= 1, 'catch-up');
          expect(received.map((e) => e.id)).toEqual(existing.map((e) => e.id));
          expect(caughtUp[0]).toBeGreaterThanOrEqual(received[6]!.position);
          const live = events(2);
          await store.appendToStream(streamId, live, { expectedRevision: 6n });
          await until(() => received.length === 9, 'live events');
          expect(received.slice(7).map((e) => e.id)).toEqual(live.map((e) => e.id));
          expect(errors).toEqual([]);
        } finally {
          await subscription.stop();
        }
      });

      it('starts after a checkpoint, exclusive', async () => {
        const streamId = newStream();
        await store.appendToStream(streamId, events(5), { expectedRevision: 'no_stream' });
        const stream = await store.readStream(streamId);
        const { received, caughtUp, subscription } = record(store, { after: stream[2]!.position }, new Set([streamId]));
        try {
          await until(() => caughtUp.length >= 1, 'catch-up');
          expect(received.map((e) => e.revision)).toEqual([3n, 4n]);
        } finally {
          await subscription.stop();
        }
      });

      it('delivers every event of concurrent writers exactly once, in position order, consistent with every stream', async () => {
        const WRITERS = 6;
        const TRANSACTIONS = 10;
        const streamIds = Array.from({ length: 8 }, () => newStream());
        const mine = new Set(streamIds);
        const { received, errors, subscription } = record(store, { after: await store.headPosition(), batchSize: 7 });
        const committed = new Set<string>();
        // Every third transaction appends with exact revisions from the writer's own (possibly
        // stale) view, re-reading the streams when another writer got there first.
        const writer = async (w: number): Promise<void> => {
          const known = new Map<string, bigint>();
          for (let t = 0; t < TRANSACTIONS; t += 1) {
            const chosen = [...new Set([streamIds[(w + t) % streamIds.length]!, streamIds[(w * 3 + t + 1) % streamIds.length]!])];
            const exact = t % 3 === 2;
            let requests: AppendRequest[] = chosen.map((streamId, s) => ({
              streamId,
              expectedRevision: exact ? (known.get(streamId) ?? 'no_stream') : 'any',
              events: [event('Written', { w, t, s })],
            }));
            for (;;) {
              try {
                for (const result of await store.appendMany(requests)) known.set(result.streamId, result.nextExpectedRevision);
                break;
              } catch (error) {
                if (!(error instanceof WrongExpectedRevisionError)) throw error;
                const streams = await store.readStreams(chosen);
                requests = requests.map((request) => {
                  const last = streams.get(request.streamId)!.at(-1);
                  return { ...request, expectedRevision: last ? last.revision : 'no_stream' };
                });
              }
            }
            for (const request of requests) for (const e of request.events) committed.add(e.id);
          }
        };
        try {
          await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
          await until(() => received.filter((e) => mine.has(e.streamId)).length >= committed.size, 'every committed event', 60_000);
          const head = await store.headPosition();
          await until(() => (received.at(-1)?.position ?? 0n) >= head, 'the subscriber to reach the head');
        } finally {
          await subscription.stop();
        }
        expect(errors).toEqual([]);
        expect(strictlyIncreasing(received.map((e) => e.position))).toBe(true);
        const ours = received.filter((e) => mine.has(e.streamId));
        expect(ours).toHaveLength(committed.size);
        expect(new Set(ours.map((e) => e.id))).toEqual(committed);
        const stored = await store.readStreams(streamIds);
        for (const streamId of streamIds) {
          const delivered = ours.filter((e) => e.streamId === streamId);
          expect(delivered.map((e) => e.revision)).toEqual(delivered.map((_, i) => BigInt(i)));
          expect(delivered.map((e) => e.id)).toEqual(stored.get(streamId)!.map((e) => e.id));
        }
      });

      it('stop() resolves after the handler in flight, and nothing is delivered after it', async () => {
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        const streamId = newStream();
        const calls: RecordedEvent[][] = [];
        let handlerDone = false;
        const subscription = store.subscribeToAll({
          after: await store.headPosition(),
          onEvents: async (batch) => {
            const ours = batch.filter((e) => e.streamId === streamId);
            if (ours.length === 0) return;
            calls.push(ours);
            await released;
            handlerDone = true;
          },
        });
        await store.appendToStream(streamId, events(1), { expectedRevision: 'no_stream' });
        await until(() => calls.length === 1, 'the handler to start');
        let stopped = false;
        const stopping = subscription.stop().then(() => (stopped = true));
        await store.appendToStream(streamId, events(1), { expectedRevision: 0n });
        expect(stopped).toBe(false);
        release();
        await stopping;
        expect(handlerDone).toBe(true);
        expect(calls).toHaveLength(1);
      });
    });

    describe('without its server', () => {
      it('fails with the retriable EventStoreUnavailableError', async () => {
        const { store: down, close: closeDown } = await target.unreachable();
        try {
          const error = await rejection(down.appendToStream(newStream(), events(1), { expectedRevision: 'any' }));
          expect(error).toBeInstanceOf(EventStoreUnavailableError);
          expect(error).toMatchObject({ code: 'event_store_unavailable', retriable: true });
          expect(await rejection(down.readAll())).toBeInstanceOf(EventStoreUnavailableError);
        } finally {
          await closeDown();
        }
      });
    });
  });
}
