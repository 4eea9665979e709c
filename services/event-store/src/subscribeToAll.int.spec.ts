import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createPool } from '@tally/postgres';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore, DEFAULT_NOTIFY_CHANNEL } from './createPostgresEventStore';
import type { EventStore, EventToAppend, RecordedEvent, SubscribeToAllOptions, Subscription } from './eventStore';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function events(count: number, type = 'Tested'): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type, data: { i } }));
}

/** A subscription that records what it receives, for assertions. */
function record(
  store: EventStore,
  options: Partial<SubscribeToAllOptions> = {},
): { received: RecordedEvent[]; errors: unknown[]; caughtUp: bigint[]; subscription: Subscription } {
  const received: RecordedEvent[] = [];
  const errors: unknown[] = [];
  const caughtUp: bigint[] = [];
  const subscription = store.subscribeToAll({
    onEvents: async (batch) => {
      received.push(...batch);
    },
    onError: (error) => errors.push(error),
    onCaughtUp: (position) => caughtUp.push(position),
    ...options,
  });
  return { received, errors, caughtUp, subscription };
}

/** Polls often: these waits are for events that arrive within milliseconds when things work. */
function until(condition: () => boolean | Promise<boolean>, description: string, timeoutMs = 30_000): Promise<boolean> {
  return waitFor(condition, { description, timeoutMs, intervalMs: 10 });
}

describe('subscribeToAll on PostgreSQL', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'es_sub' });
    // A poll interval far beyond the waits below: live delivery in these tests comes from NOTIFY.
    store = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 60_000 });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it('catches up from the start in pages, reports it, then delivers live appends through NOTIFY', async () => {
    const from = await store.headPosition();
    const existing = events(7);
    await store.appendToStream(`s-${randomUUID()}`, existing, { expectedRevision: 'no_stream' });
    const { received, caughtUp, subscription } = record(store, { after: from, batchSize: 3 });
    await until(() => caughtUp.length === 1, 'catch-up');
    expect(received.map((e) => e.id)).toEqual(existing.map((e) => e.id));
    expect(caughtUp).toEqual([received[6]!.position]);

    const live = events(2);
    await store.appendToStream(`s-${randomUUID()}`, live, { expectedRevision: 'no_stream' });
    await until(() => received.length === 9, 'live events');
    expect(received.slice(7).map((e) => e.id)).toEqual(live.map((e) => e.id));
    await subscription.stop();
  });

  it("serves two caught-up subscriptions woken by the same append with one read of its page", async () => {
    // The store's own pool, with its reads of $all counted.
    let pageReads = 0;
    const counted = new Proxy(db.pool, {
      get(target, property, receiver) {
        if (property !== 'query') return Reflect.get(target, property, receiver) as unknown;
        return (config: unknown, ...rest: unknown[]) => {
          if ((config as { name?: string } | undefined)?.name === 'tally_es_read_all') pageReads += 1;
          return (target.query as (...args: unknown[]) => unknown)(config, ...rest);
        };
      },
    });
    const sharing = createPostgresEventStore({ pool: counted, logger, pollIntervalMs: 60_000 });
    const from = await sharing.headPosition();
    const [first, second] = [record(sharing, { after: from }), record(sharing, { after: from })];
    await until(() => first.caughtUp.length === 1 && second.caughtUp.length === 1, 'both caught up');

    pageReads = 0;
    const appended = events(3);
    await sharing.appendToStream(`s-${randomUUID()}`, appended, { expectedRevision: 'no_stream' });
    await until(() => first.received.length === 3 && second.received.length === 3, 'the append delivered to both');
    expect(first.received.map((e) => e.id)).toEqual(appended.map((e) => e.id));
    expect(second.received).toEqual(first.received);
    expect(pageReads).toBe(1);
    await sharing.close();
  });

  it('starts after a checkpoint, exclusive', async () => {
    const streamId = `s-${randomUUID()}`;
    await store.appendToStream(streamId, events(5), { expectedRevision: 'no_stream' });
    const stream = await store.readStream(streamId);
    const { received, caughtUp, subscription } = record(store, { after: stream[2]!.position });
    await until(() => caughtUp.length === 1, 'catch-up');
    expect(received.map((e) => e.revision)).toEqual([3n, 4n]);
    await subscription.stop();
  });

  it('polls when a notification is lost', async () => {
    // The writer notifies a channel this subscriber does not listen on: only polling can find its events.
    const writer = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: 'nobody_listens' });
    const polling = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 50 });
    const { received, caughtUp, subscription } = record(polling, { after: await store.headPosition() });
    await until(() => caughtUp.length === 1, 'catch-up');
    const appended = events(3);
    await writer.appendToStream(`s-${randomUUID()}`, appended, { expectedRevision: 'no_stream' });
    await until(() => received.length === 3, 'polled events');
    await subscription.stop();
    await polling.close();
    await writer.close();
  });

  it('stop() waits for the handler in flight, and nothing is delivered after it', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const calls: number[] = [];
    let handlerDone = false;
    const subscription = store.subscribeToAll({
      after: await store.headPosition(),
      onEvents: async (batch) => {
        calls.push(batch.length);
        await released;
        handlerDone = true;
      },
    });
    await store.appendToStream(`s-${randomUUID()}`, events(1), { expectedRevision: 'no_stream' });
    await until(() => calls.length === 1, 'the handler to start');

    let stopped = false;
    const stopping = subscription.stop().then(() => (stopped = true));
    await store.appendToStream(`s-${randomUUID()}`, events(1), { expectedRevision: 'no_stream' });
    await new Promise((resolve) => setTimeout(resolve, 50)); // give a wrong implementation the chance to resolve early
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(handlerDone).toBe(true);
    expect(calls).toEqual([1]);
  });

  it('close() stops the subscriptions the store started', async () => {
    const after = await store.headPosition();
    const own = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 20 });
    const { received, caughtUp } = record(own, { after });
    await until(() => caughtUp.length === 1, 'catch-up');
    await own.close();
    // The control: a subscription on another store, polling as often, from the same position.
    // Once it has had two events appended one after the other, a subscription still running
    // would have had the first: so the empty list below is a delivery that did not happen, not
    // one that had not happened yet.
    const control = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 20 });
    const watched = record(control, { after });
    try {
      for (const expected of [1, 2]) {
        await store.appendToStream(`s-${randomUUID()}`, events(1), { expectedRevision: 'no_stream' });
        await until(() => watched.received.length === expected, `the control subscription to receive event ${expected}`);
      }
      expect(received).toEqual([]);
    } finally {
      await control.close();
    }
  });

  it('a writer that commits late is never skipped: later writers wait for it, so positions follow commit order', async () => {
    const after = await store.headPosition();
    // Polling often, so that a subscriber able to see the fast event early would have done so.
    const reader = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 20 });
    const { received, subscription } = record(reader, { after });
    const slowEvent = events(1, 'Slow');
    const slow = await db.pool.connect();
    try {
      await slow.query('BEGIN');
      await slow.query('SELECT * FROM append_events($1::jsonb, $2)', [
        JSON.stringify([{ streamId: `slow-${randomUUID()}`, expectedRevision: 'any', events: slowEvent.map((e) => ({ ...e, metadata: {} })) }]),
        DEFAULT_NOTIFY_CHANNEL,
      ]);

      // The slow transaction holds its positions uncommitted. A second writer must not get a
      // later position and commit first, or a subscriber reading it would pass the slow one by.
      const fastEvent = events(1, 'Fast');
      const fast = store.appendToStream(`fast-${randomUUID()}`, fastEvent, { expectedRevision: 'any' });
      await until(async () => (await writersWaitingForTheLock(db)) === 1, 'the fast writer to wait for the lock');
      expect(received).toEqual([]);

      await slow.query('COMMIT');
      await fast;
      await until(() => received.length === 2, 'both events');
      expect(received.map((e) => e.type)).toEqual(['Slow', 'Fast']);
      expect(received[0]!.position).toBeLessThan(received[1]!.position);
    } finally {
      slow.release();
      await subscription.stop();
      await reader.close();
    }
  });

  it('passes over the gap a rolled-back append leaves', async () => {
    const after = await store.headPosition();
    const { received, subscription } = record(store, { after });
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT * FROM append_events($1::jsonb, $2)', [
        JSON.stringify([{ streamId: `gap-${randomUUID()}`, expectedRevision: 'any', events: events(3).map((e) => ({ ...e, metadata: {} })) }]),
        DEFAULT_NOTIFY_CHANNEL,
      ]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    const [result] = await store.appendMany([{ streamId: `gap-${randomUUID()}`, expectedRevision: 'any', events: events(1) }]);
    expect(result!.position).toBe(after + 4n);
    await until(() => received.length === 1, 'the event after the gap');
    await subscription.stop();
  });

  it('recovers when PostgreSQL drops its connections, delivering every event exactly once', async () => {
    const applicationName = `es-victim-${randomUUID().slice(0, 8)}`;
    const pool = createPool({ connectionString: db.connectionString, schema: db.schema, applicationName, max: 2, logger });
    const victim = createPostgresEventStore({ pool, logger, pollIntervalMs: 200, retryInitialDelayMs: 20 });
    const after = await store.headPosition();
    const { received, caughtUp, subscription } = record(victim, { after, batchSize: 2 });
    try {
      const first = events(3);
      await store.appendToStream(`s-${randomUUID()}`, first, { expectedRevision: 'no_stream' });
      await until(() => received.length === 3 && caughtUp.length > 0, 'the first events');

      // 57P01 admin_shutdown on every connection of that store, its LISTEN connection included.
      const killed = await db.pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
        applicationName,
      ]);
      expect(killed.rowCount).toBeGreaterThanOrEqual(1);

      const second = events(5);
      await store.appendToStream(`s-${randomUUID()}`, second, { expectedRevision: 'no_stream' });
      await until(() => received.length >= 8, 'the events after the outage');
      expect(received.map((e) => e.id)).toEqual([...first, ...second].map((e) => e.id));
    } finally {
      await subscription.stop();
      await victim.close();
      await pool.end();
    }
  });
});

/** Backends waiting for this schema's append lock (see append_events in 001_event_store.sql). */
async function writersWaitingForTheLock(db: TestSchema): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND NOT granted AND classid = 1952541797::oid AND objid = 'events'::regclass::oid
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return rows[0]!.n;
}
