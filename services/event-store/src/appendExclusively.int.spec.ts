import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import pino from 'pino';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { EventStoreUnavailableError, WrongExpectedRevisionError } from './errors';
import type { EventStore, EventToAppend } from './eventStore';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const event = (type = 'Happened'): EventToAppend => ({ id: randomUUID(), type, data: { at: new Date().toISOString() } });

describe('appendExclusively', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_exclusive', max: 6 });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  /** Appends of this schema waiting for the store's append lock, as pg_locks shows them. */
  async function waitingAppends(): Promise<number> {
    const { rows } = await db.pool.query<{ waiting: string }>(
      "SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 'events'::regclass::oid",
    );
    return Number(rows[0]!.waiting);
  }

  it('holds every other append back from its reads to its commit, so its expected revision holds', async () => {
    const streamId = `s-${randomUUID()}`;
    await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
    let racing: Promise<unknown> | undefined;
    const { results, value } = await store.appendExclusively(async (reader) => {
      const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
      // Another writer that read the same revision appends now: it must wait for us.
      racing = store.appendToStream(streamId, [event('Racer')], { expectedRevision: last!.revision }).catch((error: unknown) => error);
      await waitFor(async () => (await waitingAppends()) === 1, { description: 'the other append to wait for the lock', timeoutMs: 30_000, intervalMs: 10 });
      return { requests: [{ streamId, expectedRevision: last!.revision, events: [event('Exclusive')] }], value: last!.revision };
    });
    expect(value).toBe(0n);
    expect(results).toEqual([expect.objectContaining({ streamId, nextExpectedRevision: 1n, idempotent: false })]);
    // The racer ran after our commit, on a stream that had moved: it conflicts, it does not overwrite.
    expect(await racing).toBeInstanceOf(WrongExpectedRevisionError);
    expect((await store.readStream(streamId)).map((recorded) => recorded.type)).toEqual(['Happened', 'Exclusive']);
  });

  it('reads on its own connection, so callers that hold the rest of the pool cannot stall it', async () => {
    // Two connections, three callers: while the first holds the lock, the second holds the other
    // connection waiting for it, and the third waits for a connection. Reads on the pool would
    // wait for ever; the transaction's own connection does not.
    const small = createPostgresEventStore({ pool: db.anotherPool(2), logger });
    const streamId = `s-${randomUUID()}`;
    await small.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
    const appendOne = () =>
      small.appendExclusively(async (reader) => {
        const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
        return { requests: [{ streamId, expectedRevision: last!.revision, events: [event('Exclusive')] }], value: last!.revision };
      });
    const outcomes = await Promise.all([appendOne(), appendOne(), appendOne()]);
    // Each read the revision the one before it wrote: none conflicted.
    expect(outcomes.map((outcome) => outcome.value).sort()).toEqual([0n, 1n, 2n]);
    expect(await small.readStream(streamId)).toHaveLength(4);
    await small.close();
  });

  it('appends nothing and lets the others go when the work fails', async () => {
    const streamId = `s-${randomUUID()}`;
    await expect(
      store.appendExclusively(async () => {
        throw new Error('decided against it');
      }),
    ).rejects.toThrow('decided against it');
    await store.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
    expect(await store.readStream(streamId)).toHaveLength(1);
    expect(await waitingAppends()).toBe(0);
  });

  it('rejects, and raises no uncaught error, when the server ends its session between its statements', async () => {
    // A pool of one of its own: the connection it hands out is the one the append holds.
    const pool = db.anotherPool(1);
    const own = createPostgresEventStore({ pool, logger });
    let held: PoolClient | undefined;
    pool.on('acquire', (client) => (held = client));
    const heard: unknown[] = [];
    pool.on('error', (error) => heard.push(error));
    const streamId = `s-${randomUUID()}`;
    await own.appendToStream(streamId, [event()], { expectedRevision: 'no_stream' });
    await expect(
      own.appendExclusively(async (reader) => {
        const [last] = await reader.readStream(streamId, { direction: 'backwards', maxCount: 1 });
        // The session holding this schema's append lock is the append's own.
        const { rows } = await db.pool.query<{ pid: number }>(
          "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 'events'::regclass::oid",
        );
        expect(rows).toHaveLength(1);
        // 'end' comes after the client has reported the failure ('error'), as it does between statements.
        let ended = false;
        held!.once('end', () => (ended = true));
        await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await waitFor(() => ended, { description: "the append's client to see its session end", timeoutMs: 10_000, intervalMs: 10 });
        return { requests: [{ streamId, expectedRevision: last!.revision, events: [event('Exclusive')] }], value: undefined };
      }),
    ).rejects.toBeInstanceOf(EventStoreUnavailableError);
    expect(heard).toContainEqual(expect.objectContaining({ code: '57P01' })); // admin_shutdown
    // The pool (of one) opens a new connection; nothing was appended.
    expect(await own.readStream(streamId)).toHaveLength(1);
    await own.close();
  });
});
