import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createEventStoreDbEventStore } from './createEventStoreDbEventStore';
import { EventStoreUnavailableError, MarkerAlreadyRecordedError } from './errors';
import type { EventToAppend } from './eventStore';
import { createEventStoreDbModel, type EventStoreDbModel } from './testing/eventStoreDbModel';
import { describeEventStoreConformance } from './testing/eventStoreConformance';

/**
 * The EventStoreDB adapter's own logic (journal, settle, checks, apply) over an in-memory model of
 * the server (testing/eventStoreDbModel.ts says what it models). Where no server can run, this is
 * what runs of the adapter; eventStoreDb.conformance.int.spec.ts runs the same suite against a
 * real server when one is reachable.
 */

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const open = (model: EventStoreDbModel) => createEventStoreDbEventStore({ connectionString: 'esdb://model:2113?tls=false', client: model.client, logger, pollIntervalMs: 50 });

describeEventStoreConformance('EventStoreDB adapter over a model of the server', {
  // A model of its own; its positions have gaps, as the server's do.
  isolated: true,
  contiguousPositions: false,
  async open() {
    const store = open(createEventStoreDbModel());
    return { store, close: () => store.close() };
  },
  async unreachable() {
    const model = createEventStoreDbModel();
    model.down = true;
    const store = open(model);
    return { store, close: () => store.close() };
  },
});

describe('EventStoreDB adapter: a crash between two streams\' appends', () => {
  const charge = (balance: string, usage: string): EventToAppend => ({ id: randomUUID(), type: 'CreditConsumed', data: { balance, usage } });

  it('leaves a committed journal entry that the next reader or writer completes: every charge once, markers recorded', async () => {
    const model = createEventStoreDbModel();
    const consumer = open(model);
    const [a, b] = [`creditBalance-${randomUUID()}`, `creditBalance-${randomUUID()}`];
    const charges = { a: charge(a, 'u1'), b: charge(b, 'u1') };
    // The process dies after the journal entry and stream a, before stream b.
    model.failAppend = (streamName) => streamName === b;
    await expect(
      consumer.appendMany(
        [
          { streamId: a, expectedRevision: 'no_stream', events: [charges.a] },
          { streamId: b, expectedRevision: 'no_stream', events: [charges.b] },
        ],
        { markers: ['acme:u1'] },
      ),
    ).rejects.toBeInstanceOf(EventStoreUnavailableError);
    expect(model.log.filter((event) => event.streamId === a)).toHaveLength(1);
    expect(model.log.filter((event) => event.streamId === b)).toHaveLength(0);
    model.failAppend = undefined;

    // Another process (the consumer after its restart) reads first: the entry is completed.
    const restarted = open(model);
    expect(await restarted.readMarkers(['acme:u1'])).toEqual(new Set(['acme:u1']));
    const streams = await restarted.readStreams([a, b]);
    expect(streams.get(a)!.map((event) => event.id)).toEqual([charges.a.id]);
    expect(streams.get(b)!.map((event) => event.id)).toEqual([charges.b.id]);

    // The redelivered batch is refused by its marker, and the old process's retry changes nothing.
    await expect(
      restarted.appendMany([{ streamId: a, expectedRevision: 'no_stream', events: [charge(a, 'u1')] }], { markers: ['acme:u1'] }),
    ).rejects.toBeInstanceOf(MarkerAlreadyRecordedError);
    await expect(
      consumer.appendMany(
        [
          { streamId: a, expectedRevision: 'no_stream', events: [charges.a] },
          { streamId: b, expectedRevision: 'no_stream', events: [charges.b] },
        ],
        { markers: ['acme:u1'] },
      ),
    ).rejects.toBeInstanceOf(MarkerAlreadyRecordedError);
    expect(model.log.filter((event) => event.streamId === a || event.streamId === b)).toHaveLength(2);
    await Promise.all([consumer.close(), restarted.close()]);
  });

  /** A process that died after the journal entry of a charge on a and b and a's append, before b's. */
  async function halfApplied() {
    const model = createEventStoreDbModel();
    const first = open(model);
    const [a, b] = [`creditBalance-${randomUUID()}`, `creditBalance-${randomUUID()}`];
    model.failAppend = (streamName) => streamName === b;
    await expect(
      first.appendMany([
        { streamId: a, expectedRevision: 'no_stream', events: [charge(a, 'u1')] },
        { streamId: b, expectedRevision: 'no_stream', events: [charge(b, 'u1')] },
      ]),
    ).rejects.toBeInstanceOf(EventStoreUnavailableError);
    model.failAppend = undefined;
    return { model, first, a, b };
  }

  it('completes the entry before a subscriber, a replay or the head position sees $all', async () => {
    const { model, first, a, b } = await halfApplied();
    // Nobody reads a stream or appends: only $all is read, as a projector after its restart does.
    const projector = open(model);
    const head = await projector.headPosition();
    const all = await projector.readAll();
    expect(all.filter((event) => event.streamId === a || event.streamId === b).map((event) => event.streamId)).toEqual([a, b]);
    expect(head).toBe(all.at(-1)!.position);
    await Promise.all([first.close(), projector.close()]);
  });

  it('completes the entry when the next writer appends, before checking its own revisions', async () => {
    const { model, first, b } = await halfApplied();
    const second = open(model);
    // Its view of b (no stream) predates the committed entry: it conflicts instead of overwriting.
    await expect(second.appendToStream(b, [charge(b, 'u2')], { expectedRevision: 'no_stream' })).rejects.toMatchObject({
      code: 'wrong_expected_revision',
      actual: 0n,
    });
    const [result] = await second.appendMany([{ streamId: b, expectedRevision: 0n, events: [charge(b, 'u2')] }]);
    expect(result).toMatchObject({ nextExpectedRevision: 1n, idempotent: false });
    await Promise.all([first.close(), second.close()]);
  });

  it('is safe when two processes complete the same entry at once', async () => {
    const model = createEventStoreDbModel();
    const writer = open(model);
    const streamIds = Array.from({ length: 6 }, () => `creditBalance-${randomUUID()}`);
    model.failAppend = (streamName) => streamName === streamIds[1];
    await expect(
      writer.appendMany(streamIds.map((streamId) => ({ streamId, expectedRevision: 'no_stream', events: [charge(streamId, 'u1'), charge(streamId, 'u1')] })), {
        markers: ['acme:u1', 'acme:u2'],
      }),
    ).rejects.toBeInstanceOf(EventStoreUnavailableError);
    model.failAppend = undefined;
    const readers = [open(model), open(model), open(model)];
    const read = await Promise.all(readers.map((reader) => reader.readStreams(streamIds)));
    for (const streams of read) for (const streamId of streamIds) expect(streams.get(streamId)).toHaveLength(2);
    expect(model.log.filter((event) => streamIds.includes(event.streamId))).toHaveLength(12);
    expect(await readers[0]!.readMarkers(['acme:u1', 'acme:u2'])).toEqual(new Set(['acme:u1', 'acme:u2']));
    await Promise.all([writer, ...readers].map((store) => store.close()));
  });
});

describe('EventStoreDB adapter: appendExclusively without a lock', () => {
  it('decides again, instead of failing, when another write commits between its reads and its append', async () => {
    const model = createEventStoreDbModel();
    const store = open(model);
    const other = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await store.appendToStream(streamId, [{ id: randomUUID(), type: 'Opened', data: {} }], { expectedRevision: 'no_stream' });
    let rounds = 0;
    const { results, value } = await store.appendExclusively(async (reader) => {
      rounds += 1;
      const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
      // The first time only, another process appends after this read: the decision is stale.
      if (rounds === 1) await other.appendToStream(streamId, [{ id: randomUUID(), type: 'Raced', data: {} }], { expectedRevision: 'any' });
      return { requests: [{ streamId, expectedRevision: last!.revision, events: [{ id: randomUUID(), type: 'Exclusive', data: {} }] }], value: last!.revision };
    });
    expect(rounds).toBe(2);
    expect(value).toBe(1n);
    expect(results[0]).toMatchObject({ nextExpectedRevision: 2n, idempotent: false });
    expect((await store.readStream(streamId)).map((event) => event.type)).toEqual(['Opened', 'Raced', 'Exclusive']);
    await Promise.all([store.close(), other.close()]);
  });
});
