import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createConsumptionProjection, createConsumptionProjector } from './consumptionProjector';
import { createPostgresConsumptionStore, type ConsumptionQuery } from './consumptionStore';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function consumed(balanceId: string, credits: string, occurredAt: string, event: string | null, id: string = randomUUID()) {
  return {
    id,
    type: 'CreditConsumed',
    data: {
      credits,
      source: event === null ? 'manual' : 'usage',
      reason: null,
      usage: event === null ? null : { eventId: randomUUID(), event, timestamp: occurredAt, quantity: '1' },
      balanceAfter: '0',
      occurredAt,
    },
    metadata: { schemaVersion: 1, balanceId, customerId: 'c', productId: 'p', causationId: null },
  };
}

const topUp = (balanceId: string, occurredAt: string) => ({
  id: randomUUID(),
  type: 'CreditToppedUp',
  data: { credits: '50', source: 'manual', reason: null, balanceAfter: '50', purchase: null, grant: null, occurredAt },
  metadata: { schemaVersion: 1, balanceId, customerId: 'c', productId: 'p', causationId: null },
});

/** A refund of `charge` (its ledger event id), as the ledger stores one. */
const refund = (balanceId: string, chargeId: string, credits: string, occurredAt: string) => ({
  id: randomUUID(),
  type: 'CreditToppedUp',
  data: { credits, source: 'refund', reason: 'failed job', balanceAfter: '50', purchase: null, grant: null, refund: { entryId: chargeId }, occurredAt },
  metadata: { schemaVersion: 1, balanceId, customerId: 'c', productId: 'p', causationId: null },
});

const withIsoStarts = (buckets: ReadonlyArray<{ start: Date }>) => buckets.map((bucket) => ({ ...bucket, start: bucket.start.toISOString() }));

/** A logger whose warnings the test reads. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), lines };
}

/**
 * The consumption projection as the charts read it: fed by the event store's subscription through
 * the checkpointed processor, sums exact, once per event however often a batch is handed over.
 * Each test has a schema of its own, hence its own checkpoint and buckets.
 */
describe('consumption per bucket and event name (consumption projector)', () => {
  let db: TestSchema;
  let eventStore: EventStore;

  beforeEach(async () => {
    db = await createTestSchema({ prefix: 'consumption' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterEach(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  /** Waits until the projection has handled every event stored so far. */
  async function caughtUp(position: () => bigint): Promise<void> {
    const head = await eventStore.headPosition();
    await waitFor(() => position() >= head, { description: `the consumption projection at position ${head}` });
  }

  it('sums each hour and day per event name exactly, manual deductions apart, from the subscription', async () => {
    const balanceId = `b-${randomUUID()}`;
    const stream = `creditBalance-${balanceId}`;
    const repeated = consumed(balanceId, '0.000001', '2026-03-01T10:59:59.999Z', 'api_call');
    await eventStore.appendToStream(
      stream,
      [
        consumed(balanceId, '1.5', '2026-03-01T10:00:00Z', 'api_call'),
        repeated,
        consumed(balanceId, '2', '2026-03-01T10:30:00Z', 'tokens_used'),
        // 22 digits of micro-credits: beyond bigint in PostgreSQL, exact in numeric.
        consumed(balanceId, '9999999999999999.999999', '2026-03-01T11:00:00Z', 'api_call'),
        consumed(balanceId, '3', '2026-03-02T00:00:00Z', null),
        topUp(balanceId, '2026-03-01T10:10:00Z'),
      ],
      { expectedRevision: 'no_stream' },
    );
    // The same event again (a redelivery's idempotent append) is stored once, so counted once.
    await eventStore.appendToStream(stream, [repeated], { expectedRevision: 'any' });
    // Another balance's consumption stays its own; a stream of another category is no balance's.
    await eventStore.appendToStream(`creditBalance-other-${balanceId}`, [consumed(`other-${balanceId}`, '7', '2026-03-01T10:00:00Z', 'api_call')], {
      expectedRevision: 'no_stream',
    });
    await eventStore.appendToStream(`elsewhere-${balanceId}`, [consumed(balanceId, '5', '2026-03-01T10:00:00Z', 'api_call')], { expectedRevision: 'no_stream' });

    // Several processes, as several projector roles run it: the lease lets one work at a time.
    const projectors = [0, 1].map(() => createConsumptionProjector({ eventStore, pool: db.pool, logger, lease: { standbyPollMs: 100 } }));
    await Promise.all(projectors.map((projector) => projector.start()));
    try {
      await caughtUp(() => projectors.reduce((furthest, projector) => (projector.checkpoint() > furthest ? projector.checkpoint() : furthest), 0n));
      expect(projectors.filter((projector) => projector.isLeading())).toHaveLength(1);
    } finally {
      await Promise.all(projectors.map((projector) => projector.stop()));
    }

    const store = createPostgresConsumptionStore({ pool: db.pool });
    const hours = await store.consumption(balanceId, { from: new Date('2026-03-01T10:20:00Z'), to: new Date('2026-03-03T00:00:00Z'), bucket: 'hour' });
    // `from` is rounded down to its bucket: 10:00 is in.
    expect(withIsoStarts(hours.buckets)).toEqual([
      { start: '2026-03-01T10:00:00.000Z', event: 'api_call', credits: 1_500_001n, refunded: 0n, entries: 2 },
      { start: '2026-03-01T10:00:00.000Z', event: 'tokens_used', credits: 2_000_000n, refunded: 0n, entries: 1 },
      { start: '2026-03-01T11:00:00.000Z', event: 'api_call', credits: 9_999_999_999_999_999_999_999n, refunded: 0n, entries: 1 },
      { start: '2026-03-02T00:00:00.000Z', event: null, credits: 3_000_000n, refunded: 0n, entries: 1 },
    ]);
    // The position the sums reflect is the projection's checkpoint: every event stored.
    expect(hours.position).toBe(await eventStore.headPosition());
    const days = await store.consumption(balanceId, { from: new Date('2026-03-01T00:00:00Z'), to: new Date('2026-03-02T00:00:00Z'), bucket: 'day' });
    expect(withIsoStarts(days.buckets)).toEqual([
      { start: '2026-03-01T00:00:00.000Z', event: 'api_call', credits: 10_000_000_000_000_001_500_000n, refunded: 0n, entries: 3 },
      { start: '2026-03-01T00:00:00.000Z', event: 'tokens_used', credits: 2_000_000n, refunded: 0n, entries: 1 },
    ]);
    expect(await store.consumption(`nobody-${balanceId}`, { from: new Date(0), to: new Date(), bucket: 'day' })).toEqual({ position: hours.position, buckets: [] });
  });

  it("counts a refund in its charge's bucket (the hour its usage happened, its event), once, whichever batch holds either", async () => {
    const balanceId = `b-${randomUUID()}`;
    const stream = `creditBalance-${balanceId}`;
    const render = consumed(balanceId, '2', '2026-03-01T10:15:00Z', 'render');
    const deduction = consumed(balanceId, '3', '2026-03-01T11:00:00Z', null);
    const other = consumed(balanceId, '5', '2026-03-01T10:45:00Z', 'render');
    await eventStore.appendToStream(stream, [render, deduction, other], { expectedRevision: 'no_stream' });
    // Refunded days later: the bucket of the usage it gives back for is the one that goes down.
    await eventStore.appendToStream(
      stream,
      [
        refund(balanceId, render.id, '0.5', '2026-03-04T09:00:00Z'),
        refund(balanceId, deduction.id, '3', '2026-03-04T09:00:00Z'),
        // One whose charge is not stored (a hand-made event): logged and left out, never a stall.
        refund(balanceId, randomUUID(), '1', '2026-03-04T09:00:00Z'),
      ],
      { expectedRevision: 2n },
    );
    const events = await eventStore.readAll({});
    const projection = createConsumptionProjection({ pool: db.pool, eventStore, logger });
    // As the processor does first: the checkpoint row at 0.
    expect(await projection.checkpoints.load('consumption-projection')).toBe(0n);
    // The charges and their refunds in separate batches, one handed over again, and a batch whole.
    await projection.handle(events.slice(0, 3));
    await projection.handle(events.slice(3, 4));
    await projection.handle(events.slice(3, 4));
    await projection.handle(events);

    const { buckets } = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, {
      from: new Date('2026-03-01T00:00:00Z'),
      to: new Date('2026-03-05T00:00:00Z'),
      bucket: 'hour',
    });
    expect(withIsoStarts(buckets)).toEqual([
      // 2 + 5 charged in the hour, 0.5 of the first given back, two charges.
      { start: '2026-03-01T10:00:00.000Z', event: 'render', credits: 7_000_000n, refunded: 500_000n, entries: 2 },
      // A manual deduction refunded in full.
      { start: '2026-03-01T11:00:00.000Z', event: null, credits: 3_000_000n, refunded: 3_000_000n, entries: 1 },
    ]);
  });

  it('counts a batch handed over again, whole or overlapping, once', async () => {
    const balanceId = `b-${randomUUID()}`;
    await eventStore.appendToStream(
      `creditBalance-${balanceId}`,
      ['1', '2', '4', '8'].map((credits) => consumed(balanceId, credits, '2026-03-01T10:00:00Z', 'api_call')),
      { expectedRevision: 'no_stream' },
    );
    const events = await eventStore.readAll({});
    expect(events).toHaveLength(4);
    const projection = createConsumptionProjection({ pool: db.pool, eventStore, logger });
    // As a processor that crashed before its bookkeeping, or a deposed lease holder, hands them over.
    await projection.handle(events.slice(0, 2));
    await projection.handle(events.slice(0, 2));
    await projection.handle(events.slice(1));
    await Promise.all([projection.handle(events), projection.handle(events.slice(2))]);

    const query: ConsumptionQuery = { from: new Date('2026-03-01T00:00:00Z'), to: new Date('2026-03-02T00:00:00Z'), bucket: 'day' };
    const { buckets, position } = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, query);
    expect(withIsoStarts(buckets)).toEqual([{ start: '2026-03-01T00:00:00.000Z', event: 'api_call', credits: 15_000_000n, refunded: 0n, entries: 4 }]);
    expect(position).toBe(events[3]!.position);
    expect(await projection.checkpoints.load('consumption-projection')).toBe(events[3]!.position);
  });

  it('adds a batch that starts past its checkpoint in one statement, and one that overlaps it in a transaction', async () => {
    const balanceId = `b-${randomUUID()}`;
    await eventStore.appendToStream(
      `creditBalance-${balanceId}`,
      ['1', '2', '4'].map((credits) => consumed(balanceId, credits, '2026-03-01T10:00:00Z', 'api_call')),
      { expectedRevision: 'no_stream' },
    );
    const events = await eventStore.readAll({});
    // What the projection sends: statements on the pool, and transactions on a connection of its own.
    const statements: string[] = [];
    let transactions = 0;
    const counted = Object.assign(Object.create(db.pool) as typeof db.pool, {
      query: (text: string, values?: unknown[]) => {
        statements.push(text);
        return db.pool.query(text, values);
      },
      connect: () => {
        transactions += 1;
        return db.pool.connect();
      },
    });
    const projection = createConsumptionProjection({ pool: counted, eventStore, logger });
    // A first batch: no checkpoint row yet, so the transaction makes it at 0 and asks the
    // processor to start again from there, counting nothing (it cannot know what came before).
    expect(await projection.handle(events.slice(0, 1))).toEqual({ restart: expect.stringContaining('no checkpoint') });
    expect(transactions).toBe(1);
    expect(await projection.checkpoints.load('consumption-projection')).toBe(0n);
    // Handed over again from 0: past the checkpoint, in one statement.
    statements.length = 0;
    await projection.handle(events.slice(0, 1));
    expect(statements).toHaveLength(1);
    statements.length = 0;

    await projection.handle(events.slice(1, 2));
    expect(statements).toHaveLength(1);
    expect(transactions).toBe(1);

    // Handed over again with one event more: only that one is added, under the row's lock.
    await projection.handle(events.slice(1));
    expect(transactions).toBe(2);

    const { buckets, position } = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, {
      from: new Date('2026-03-01T00:00:00Z'),
      to: new Date('2026-03-02T00:00:00Z'),
      bucket: 'day',
    });
    expect(withIsoStarts(buckets)).toEqual([{ start: '2026-03-01T00:00:00.000Z', event: 'api_call', credits: 7_000_000n, refunded: 0n, entries: 3 }]);
    expect(position).toBe(events[2]!.position);
  });

  it('counts the whole ledger again when its buckets and checkpoint row are reset under a running projector (migration 029, a store switch)', async () => {
    const balanceId = `b-${randomUUID()}`;
    const stream = `creditBalance-${balanceId}`;
    await eventStore.appendToStream(
      stream,
      [consumed(balanceId, '1', '2026-03-01T10:00:00Z', 'api_call'), consumed(balanceId, '2', '2026-03-01T10:05:00Z', 'api_call')],
      { expectedRevision: 'no_stream' },
    );
    const projector = createConsumptionProjector({ eventStore, pool: db.pool, logger, lease: { standbyPollMs: 100 } });
    await projector.start();
    try {
      await caughtUp(() => projector.checkpoint());
      // The documented reset, while the projector runs.
      await db.pool.query("TRUNCATE consumption_buckets; DELETE FROM subscription_checkpoints WHERE name = 'consumption-projection'");
      await eventStore.appendToStream(stream, [consumed(balanceId, '4', '2026-03-01T10:10:00Z', 'api_call')], { expectedRevision: 'any' });
      const head = await eventStore.headPosition();
      // Caught up by the sums' own position, and by what they hold: the whole ledger again.
      await waitFor(
        async () => {
          const { buckets, position } = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, {
            from: new Date('2026-03-01T00:00:00Z'),
            to: new Date('2026-03-02T00:00:00Z'),
            bucket: 'day',
          });
          return position >= head && buckets.length === 1 && buckets[0]!.entries === 3;
        },
        { description: 'the reset projection counting all three charges' },
      );
    } finally {
      await projector.stop();
    }
    const { buckets } = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, {
      from: new Date('2026-03-01T00:00:00Z'),
      to: new Date('2026-03-02T00:00:00Z'),
      bucket: 'hour',
    });
    expect(withIsoStarts(buckets)).toEqual([{ start: '2026-03-01T10:00:00.000Z', event: 'api_call', credits: 7_000_000n, refunded: 0n, entries: 3 }]);
  });

  it('skips an event it cannot decode with its reason logged, never stalling; an unreadable time counts when recorded', async () => {
    const balanceId = `b-${randomUUID()}`;
    const odd = consumed(balanceId, '1', '2026-03-01T10:00:00Z', 'api_call');
    const noTime = { ...odd, id: randomUUID(), data: { ...odd.data, occurredAt: 'yesterday' } };
    const noAmount = { ...odd, id: randomUUID(), data: { ...odd.data, credits: 'lots' } };
    const before = new Date();
    await eventStore.appendToStream(`creditBalance-${balanceId}`, [noAmount, noTime, odd], { expectedRevision: 'no_stream' });

    const { logger: capturing, lines } = capturingLogger();
    const projector = createConsumptionProjector({ eventStore, pool: db.pool, logger: capturing });
    await projector.start();
    try {
      await caughtUp(() => projector.checkpoint());
    } finally {
      await projector.stop();
    }

    const hours = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, {
      from: new Date('2026-03-01T00:00:00Z'),
      to: new Date(Date.now() + 3_600_000),
      bucket: 'hour',
    });
    expect(hours.buckets).toEqual([
      { start: new Date('2026-03-01T10:00:00Z'), event: 'api_call', credits: 1_000_000n, refunded: 0n, entries: 1 },
      { start: expect.any(Date), event: 'api_call', credits: 1_000_000n, refunded: 0n, entries: 1 },
    ]);
    expect(hours.buckets[1]!.start.getTime()).toBeGreaterThan(before.getTime() - 3_600_000);
    const skipped = lines.filter((line) => line.msg === 'skipping a CreditConsumed event that cannot be decoded');
    expect(skipped).toEqual([expect.objectContaining({ eventId: noAmount.id, err: expect.objectContaining({ message: expect.any(String) }) })]);
  });
});
