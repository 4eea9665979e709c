import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { capturedLog, waitFor } from '@tally/test-support';
import { createEventStoreDbEventStore } from './createEventStoreDbEventStore';
import { EventStoreStreamDeletedError, InvalidEventStoreRequestError, StreamRevisionMismatchError } from './errors';
import type { EventToAppend } from './eventStore';
import { createEventStoreDbModel, type EventStoreDbModel } from './testing/eventStoreDbModel';

/**
 * The EventStoreDB adapter audit's findings (journal contention, client options, deleted streams,
 * aged-out batches, entry size), each on the in-memory model of the server
 * (testing/eventStoreDbModel.ts), extended where it says so with the server's documented
 * behaviour: no server runs here, so these say nothing of a real server beyond what is modelled.
 */

jest.setTimeout(90_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const open = (model: EventStoreDbModel, log = logger) =>
  createEventStoreDbEventStore({ connectionString: 'esdb://model:2113?tls=false', client: model.client, logger: log, pollIntervalMs: 50, retryInitialDelayMs: 10, retryMaxDelayMs: 50 });
const event = (type: string, data: Record<string, string> = {}): EventToAppend => ({ id: randomUUID(), type, data });
const isBatch = (streamId: string) => streamId.startsWith('tally-store.batch-');

describe('EventStoreDB adapter: a big append against a steady stream of small ones', () => {
  it('stages its events once, and commits or fails retriably within its bound instead of retrying for ever', async () => {
    const model = createEventStoreDbModel();
    const big = open(model);
    const small = open(model);
    let stop = false;
    const smallWriter = (async () => {
      const streamId = `creditBalance-${randomUUID()}`;
      await small.appendToStream(streamId, [event('Opened')], { expectedRevision: 'no_stream' });
      while (!stop) await small.appendToStream(streamId, [event('TopUp', { amount: '1' })], { expectedRevision: 'any' });
    })();
    const requests = Array.from({ length: 400 }, () => {
      const streamId = `creditBalance-${randomUUID()}`;
      return { streamId, expectedRevision: 'no_stream' as const, events: [event('CreditConsumed', { amount: '1', usage: 'x'.repeat(100) })] };
    });
    const bigStreams = new Set(requests.map((request) => request.streamId));
    // A deadline of the test's own: before the fix the call never ended.
    const outcome = await Promise.race([
      big.appendMany(requests, { markers: requests.map(() => randomUUID()) }).then(
        () => 'committed',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still running after 60 s'), 60_000).unref()),
    ]);
    stop = true;
    await smallWriter;
    if (outcome !== 'committed') expect(outcome).toMatchObject({ retriable: true, code: 'event_store_contended' });
    const stagedCopies = model.log.filter((stored) => isBatch(stored.streamId) && bigStreams.has((JSON.parse(stored.data) as { streamId: string }).streamId));
    expect(stagedCopies).toHaveLength(requests.length);
    await Promise.all([big.close(), small.close()]);
  });
});

describe('EventStoreDB adapter: the staged batch\'s digest', () => {
  /** The adapter on the model, counting the digests of staged batches it computes. */
  const counting = (model: EventStoreDbModel, client = model.client) => {
    const digests: number[] = [];
    const store = createEventStoreDbEventStore({
      connectionString: 'esdb://model:2113?tls=false',
      client,
      logger,
      batchDigest: (events) => {
        digests.push(events.length);
        return JSON.stringify(events);
      },
    });
    return { store, digests };
  };

  it('computes none in an uncontended round: only a lost round has a staged batch to compare', async () => {
    const model = createEventStoreDbModel();
    const { store, digests } = counting(model);
    const requests = Array.from({ length: 50 }, () => ({
      streamId: `creditBalance-${randomUUID()}`,
      expectedRevision: 'no_stream' as const,
      events: [event('CreditConsumed', { amount: '1' })],
    }));
    await store.appendMany(requests, { markers: requests.map(() => randomUUID()) });
    await store.appendToStream(requests[0]!.streamId, [event('CreditConsumed', { amount: '2' })], { expectedRevision: 0n });
    expect(digests).toEqual([]);
    expect(await store.readStream(requests[0]!.streamId)).toHaveLength(2);
    await store.close();
  });

  it('compares after a round lost to an entry touching its stream, and reuses the batch it staged', async () => {
    const model = createEventStoreDbModel();
    const other = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await other.appendToStream(streamId, [event('Opened')], { expectedRevision: 'no_stream' });
    let raced = false;
    // Between this store's check and its journal append, another process appends to the same stream.
    const client = {
      ...model.client,
      appendToStream: async (...args: Parameters<typeof model.client.appendToStream>) => {
        if (!raced && args[0] === 'tally-store.journal') {
          raced = true;
          await other.appendToStream(streamId, [event('TopUp', { amount: '1' })], { expectedRevision: 'any' });
        }
        return model.client.appendToStream(...args);
      },
    } as typeof model.client;
    const { store, digests } = counting(model, client);
    const mine = [event('CreditConsumed', { amount: '1' }), event('CreditConsumed', { amount: '2' })];
    await expect(store.appendToStream(streamId, mine, { expectedRevision: 'any' })).resolves.toMatchObject({ nextExpectedRevision: 3n });
    expect(raced).toBe(true);
    // The round that planned again compared what it planned with what was staged: the same events.
    expect(digests.length).toBeGreaterThan(0);
    const staged = model.log.filter((stored) => isBatch(stored.streamId) && mine.some((e) => (JSON.parse(stored.data) as { id: string }).id === e.id));
    expect(staged).toHaveLength(mine.length);
    expect((await store.readStream(streamId)).map((stored) => stored.id).slice(2)).toEqual(mine.map((e) => e.id));
    await Promise.all([store.close(), other.close()]);
  });
});

describe('EventStoreDB adapter: a lost journal race against entries that touch nothing of the call', () => {
  it('commits a big append against a steady stream of small writes to other streams', async () => {
    const model = createEventStoreDbModel();
    const [big, small] = [open(model), open(model)];
    let stop = false;
    const smallWriter = (async () => {
      const streamId = `creditBalance-${randomUUID()}`;
      await small.appendToStream(streamId, [event('Opened')], { expectedRevision: 'no_stream' });
      while (!stop) await small.appendToStream(streamId, [event('TopUp', { amount: '1' })], { expectedRevision: 'any' });
    })();
    const requests = Array.from({ length: 400 }, () => ({
      streamId: `creditBalance-${randomUUID()}`,
      expectedRevision: 'no_stream' as const,
      events: [event('CreditConsumed', { amount: '1' })],
    }));
    const markers = requests.map(() => randomUUID());
    const outcome = await big.appendMany(requests, { markers }).then(
      () => 'committed',
      (error: unknown) => error,
    );
    stop = true;
    await smallWriter;
    expect(outcome).toBe('committed');
    expect((await big.readMarkers(markers)).size).toBe(markers.length);
    await Promise.all([big.close(), small.close()]);
  });

  it('still finds an id stored in another stream by an entry that got in first', async () => {
    const model = createEventStoreDbModel();
    const other = open(model);
    const duplicate = event('CreditConsumed', { amount: '1' });
    const [mine, theirs] = [`creditBalance-${randomUUID()}`, `creditBalance-${randomUUID()}`];
    let raced = false;
    // Between this store's check and its journal append, another process stores the same id elsewhere.
    const client = {
      ...model.client,
      appendToStream: async (...args: Parameters<typeof model.client.appendToStream>) => {
        if (!raced && args[0] === 'tally-store.journal') {
          raced = true;
          await other.appendToStream(theirs, [duplicate], { expectedRevision: 'no_stream' });
        }
        return model.client.appendToStream(...args);
      },
    } as typeof model.client;
    const store = createEventStoreDbEventStore({ connectionString: 'esdb://model:2113?tls=false', client, logger });
    await expect(store.appendToStream(mine, [duplicate], { expectedRevision: 'no_stream' })).rejects.toMatchObject({ code: 'duplicate_event_id' });
    expect(raced).toBe(true);
    await Promise.all([store.close(), other.close()]);
  });
});

describe('EventStoreDB adapter: appends that fail without throwing', () => {
  it('refuses a connection string with throwOnAppendFailure=false at construction', () => {
    expect(() => createEventStoreDbEventStore({ connectionString: 'esdb://127.0.0.1:2113?tls=false&throwOnAppendFailure=false', logger })).toThrow(
      expect.objectContaining({ constructor: InvalidEventStoreRequestError, message: expect.stringMatching(/throwOnAppendFailure/) }),
    );
  });

  it('takes a { success: false } result for the wrong expected version it is: no lost race is taken for a commit', async () => {
    const model = createEventStoreDbModel();
    model.throwOnAppendFailure = false;
    const [first, second] = [open(model), open(model)];
    const streamIds = Array.from({ length: 8 }, () => `creditBalance-${randomUUID()}`);
    const results = await Promise.all(
      streamIds.map((streamId, i) =>
        (i % 2 === 0 ? first : second).appendMany([{ streamId, expectedRevision: 'no_stream', events: [event('CreditConsumed', { amount: '1' })] }], {
          markers: [`usage-${streamId}`],
        }),
      ),
    );
    expect(results.map(([result]) => result!.idempotent)).toEqual(streamIds.map(() => false));
    const stored = await first.readStreams(streamIds);
    expect(streamIds.map((streamId) => stored.get(streamId)!.length)).toEqual(streamIds.map(() => 1));
    expect((await first.readMarkers(streamIds.map((streamId) => `usage-${streamId}`))).size).toBe(streamIds.length);
    await Promise.all([first.close(), second.close()]);
  });
});

describe('EventStoreDB adapter: deleted streams and records of the server in $all', () => {
  it('skips a tombstone in $all, counted and logged: subscribers go on past it and the head position ignores it', async () => {
    const model = createEventStoreDbModel();
    const log = capturedLog('info');
    const store = open(model, log.logger);
    const [a, dead] = [`creditBalance-${randomUUID()}`, `creditBalance-${randomUUID()}`];
    await store.appendToStream(a, [event('CreditConsumed', { amount: '1' })], { expectedRevision: 'no_stream' });
    await store.appendToStream(dead, [event('CreditConsumed', { amount: '2' })], { expectedRevision: 'no_stream' });
    model.tombstone(dead);
    // The tombstone is the newest record of $all.
    const lastTally = model.log.filter((stored) => stored.streamId === dead && stored.type === 'CreditConsumed')[0]!.position;
    expect(await store.headPosition()).toBe(lastTally);
    await store.appendToStream(a, [event('CreditConsumed', { amount: '3' })], { expectedRevision: 0n });

    const delivered: string[] = [];
    const subscription = store.subscribeToAll({
      onEvents: async (events) => {
        delivered.push(...events.map((recorded) => String(recorded.data.amount)));
      },
    });
    await waitFor(() => delivered.includes('3'), { description: 'the event after the tombstone delivered', timeoutMs: 10_000 });
    await subscription.stop();
    expect(delivered).toEqual(['1', '2', '3']);
    expect(log.lines.some((line) => line.includes('$streamDeleted') && line.includes(dead))).toBe(true);
    await store.close();
  });

  it('fails loudly, naming the event, on a non-JSON event of a Tally type: that is corruption, not the server\'s bookkeeping', async () => {
    const model = createEventStoreDbModel();
    const store = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await store.appendToStream(streamId, [event('CreditConsumed', { amount: '1' })], { expectedRevision: 'no_stream' });
    const last = model.log[model.log.length - 1]!;
    const id = randomUUID();
    (model.log as (typeof last)[]).push({ ...last, streamId, id, type: 'CreditConsumed', revision: last.revision + 1n, position: last.position + 500n, data: '', metadata: '', isJson: false });
    await expect(store.readAll()).rejects.toThrow(new RegExp(`${id}.*${streamId}|${streamId}.*${id}`));
    await store.close();
  });

  it('makes a read of, or an append to, a hard-deleted stream the typed EventStoreStreamDeletedError', async () => {
    const model = createEventStoreDbModel();
    const store = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await store.appendToStream(streamId, [event('CreditConsumed', { amount: '1' })], { expectedRevision: 'no_stream' });
    model.tombstone(streamId);
    const read = store.readStream(streamId);
    await expect(read).rejects.toBeInstanceOf(EventStoreStreamDeletedError);
    await expect(read).rejects.toMatchObject({ retriable: false, streamId });
    await expect(store.appendToStream(streamId, [event('CreditConsumed')], { expectedRevision: 'any' })).rejects.toBeInstanceOf(EventStoreStreamDeletedError);
    // Nothing was committed for it: the store goes on.
    const other = `creditBalance-${randomUUID()}`;
    await expect(store.appendToStream(other, [event('CreditConsumed')], { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextExpectedRevision: 0n });
    await store.close();
  });

  it('fails, typed and not transient, before indexing, when a soft-deleted stream is recreated at revisions the journal did not record', async () => {
    const model = createEventStoreDbModel();
    const store = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await store.appendToStream(streamId, [event('CreditToppedUp', { amount: '10' }), event('CreditToppedUp', { amount: '20' })], { expectedRevision: 'no_stream' });
    model.softDelete(streamId);
    const [e1, e2] = [event('CreditToppedUp', { amount: '1' }), event('CreditToppedUp', { amount: '2' })];
    const append = store.appendToStream(streamId, [e1, e2], { expectedRevision: 'any' });
    await expect(append).rejects.toBeInstanceOf(StreamRevisionMismatchError);
    await expect(append).rejects.toMatchObject({ retriable: false, streamId });
    // No index names the revisions the server did not give them.
    expect(model.log.filter((stored) => stored.streamId === `tally-store.event-${e1.id}` || stored.streamId === `tally-store.event-${e2.id}`)).toHaveLength(0);
    await store.close();
  });
});

describe('EventStoreDB adapter: batch streams removed after their entry was applied', () => {
  it('starts and works when the journal\'s last batch has aged out ($maxAge)', async () => {
    const model = createEventStoreDbModel();
    const first = open(model);
    const streamId = `creditBalance-${randomUUID()}`;
    await first.appendToStream(streamId, [event('Opened')], { expectedRevision: 'no_stream' });
    await first.close();
    for (const batch of new Set(model.log.filter((stored) => isBatch(stored.streamId)).map((stored) => stored.streamId))) model.softDelete(batch);

    const restarted = open(model);
    expect(await restarted.headPosition()).toBeGreaterThan(0n);
    expect(await restarted.readStream(streamId)).toHaveLength(1);
    await expect(restarted.appendToStream(streamId, [event('TopUp')], { expectedRevision: 0n })).resolves.toMatchObject({ nextExpectedRevision: 1n });
    await restarted.close();
  });

  it('completes an entry whose streams were written but not its index and markers, from the streams themselves', async () => {
    const model = createEventStoreDbModel();
    const first = open(model);
    const [a, b] = [`creditBalance-${randomUUID()}`, `creditBalance-${randomUUID()}`];
    const [ea, eb] = [event('CreditConsumed', { amount: '1' }), event('CreditConsumed', { amount: '2' })];
    // The process dies after both streams' appends, before any id index.
    model.failAppend = (streamName) => streamName.startsWith('tally-store.event-');
    await expect(
      first.appendMany(
        [
          { streamId: a, expectedRevision: 'no_stream', events: [ea] },
          { streamId: b, expectedRevision: 'no_stream', events: [eb] },
        ],
        { markers: ['acme:u1'] },
      ),
    ).rejects.toMatchObject({ retriable: true });
    model.failAppend = undefined;
    for (const batch of new Set(model.log.filter((stored) => isBatch(stored.streamId)).map((stored) => stored.streamId))) model.softDelete(batch);

    const restarted = open(model);
    expect(await restarted.readMarkers(['acme:u1'])).toEqual(new Set(['acme:u1']));
    expect((await restarted.readEventsById([ea.id, eb.id])).map((stored) => stored.id)).toEqual([ea.id, eb.id]);
    await Promise.all([first.close(), restarted.close()]);
  });
});

describe('EventStoreDB adapter: the journal entry\'s size', () => {
  it('refuses a call whose journal entry would not fit the server\'s append limit, before staging anything, naming the ceiling', async () => {
    const model = createEventStoreDbModel();
    const store = open(model);
    const requests = Array.from({ length: 9_000 }, () => {
      const streamId = `creditBalance-${randomUUID()}`;
      return { streamId, expectedRevision: 'no_stream' as const, events: [event('CreditConsumed', { amount: '1' })] };
    });
    const append = store.appendMany(requests, { markers: requests.map((request) => `usage-${request.streamId}`) });
    await expect(append).rejects.toBeInstanceOf(InvalidEventStoreRequestError);
    await expect(append).rejects.toThrow(/journal entry/);
    expect(model.log.filter((stored) => isBatch(stored.streamId))).toHaveLength(0);
    await store.close();
  });
});
