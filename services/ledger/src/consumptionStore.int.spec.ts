import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '@tally/postgres';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createPostgresConsumptionStore } from './consumptionStore';

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

/** Migration 014's projection, as the charts read it: sums exact, once per stored event, from the append itself. */
describe('consumption per bucket and event name (migration 014)', () => {
  let db: TestSchema;
  let eventStore: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'consumption' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  it('sums each hour and day per event name exactly, manual deductions apart, and counts a repeated append once', async () => {
    const balanceId = `b-${randomUUID()}`;
    const stream = `creditBalance-${balanceId}`;
    const repeated = consumed(balanceId, '0.000001', '2026-03-01T10:59:59.999Z', 'api_call');
    const first = [
      consumed(balanceId, '1.5', '2026-03-01T10:00:00Z', 'api_call'),
      repeated,
      consumed(balanceId, '2', '2026-03-01T10:30:00Z', 'tokens_used'),
      consumed(balanceId, '9999999999999999.999999', '2026-03-01T11:00:00Z', 'api_call'),
      consumed(balanceId, '3', '2026-03-02T00:00:00Z', null),
      topUp(balanceId, '2026-03-01T10:10:00Z'),
    ];
    await eventStore.appendToStream(stream, first, { expectedRevision: 'no_stream' });
    // The same event again (a redelivery's idempotent append) inserts nothing and sums nothing.
    await eventStore.appendToStream(stream, [repeated], { expectedRevision: 'any' });
    // Another balance's consumption stays its own.
    await eventStore.appendToStream(`creditBalance-other-${balanceId}`, [consumed(`other-${balanceId}`, '7', '2026-03-01T10:00:00Z', 'api_call')], {
      expectedRevision: 'no_stream',
    });

    const store = createPostgresConsumptionStore({ pool: db.pool });
    const hours = await store.consumption(balanceId, { from: new Date('2026-03-01T10:20:00Z'), to: new Date('2026-03-03T00:00:00Z'), bucket: 'hour' });
    // `from` is rounded down to its bucket: 10:00 is in.
    expect(hours.map((bucket) => ({ ...bucket, start: bucket.start.toISOString() }))).toEqual([
      { start: '2026-03-01T10:00:00.000Z', event: 'api_call', credits: 1_500_001n, entries: 2 },
      { start: '2026-03-01T10:00:00.000Z', event: 'tokens_used', credits: 2_000_000n, entries: 1 },
      { start: '2026-03-01T11:00:00.000Z', event: 'api_call', credits: 9_999_999_999_999_999_999_999n, entries: 1 },
      { start: '2026-03-02T00:00:00.000Z', event: null, credits: 3_000_000n, entries: 1 },
    ]);
    const days = await store.consumption(balanceId, { from: new Date('2026-03-01T00:00:00Z'), to: new Date('2026-03-02T00:00:00Z'), bucket: 'day' });
    expect(days.map((bucket) => ({ ...bucket, start: bucket.start.toISOString() }))).toEqual([
      { start: '2026-03-01T00:00:00.000Z', event: 'api_call', credits: 10_000_000_000_000_001_500_000n, entries: 3 },
      { start: '2026-03-01T00:00:00.000Z', event: 'tokens_used', credits: 2_000_000n, entries: 1 },
    ]);
    expect(await store.consumption(`nobody-${balanceId}`, { from: new Date(0), to: new Date(), bucket: 'day' })).toEqual([]);
  });

  it('never fails an append for an event it cannot read: no amount adds nothing, no occurredAt counts when recorded', async () => {
    const balanceId = `b-${randomUUID()}`;
    const odd = consumed(balanceId, '1', '2026-03-01T10:00:00Z', 'api_call');
    const noTime = { ...odd, id: randomUUID(), data: { ...odd.data, occurredAt: 'yesterday' } };
    const noAmount = { ...odd, id: randomUUID(), data: { ...odd.data, credits: 'lots' } };
    const before = new Date();
    await eventStore.appendToStream(`creditBalance-${balanceId}`, [noTime, noAmount], { expectedRevision: 'no_stream' });
    const hours = await createPostgresConsumptionStore({ pool: db.pool }).consumption(balanceId, { from: new Date(before.getTime() - 3_600_000), to: new Date(Date.now() + 3_600_000), bucket: 'hour' });
    expect(hours).toEqual([{ start: expect.any(Date), event: 'api_call', credits: 1_000_000n, entries: 1 }]);
    expect(hours[0]!.start.getTime()).toBeGreaterThan(before.getTime() - 3_600_000);
  });

  it('fills the buckets from the events stored before the migration', async () => {
    const before014 = await mkdtemp(path.join(tmpdir(), 'tally-migrations-'));
    try {
      for (const file of await readdir(DEFAULT_MIGRATIONS_DIR)) {
        if (/^0(0[0-9]|1[0-3])_.*\.sql$/.test(file)) await cp(path.join(DEFAULT_MIGRATIONS_DIR, file), path.join(before014, file));
      }
      const old = await createTestSchema({ prefix: 'consumption_backfill', migrationsDir: before014 });
      const oldStore = createPostgresEventStore({ pool: old.pool, logger });
      try {
        const balanceId = `b-${randomUUID()}`;
        await oldStore.appendToStream(
          `creditBalance-${balanceId}`,
          [consumed(balanceId, '1', '2026-03-01T10:00:00Z', 'api_call'), consumed(balanceId, '2', '2026-03-01T10:05:00Z', 'api_call')],
          { expectedRevision: 'no_stream' },
        );
        expect((await migrate({ pool: old.pool, schema: old.schema, logger })).applied).toEqual(['014_consumption_buckets']);
        const hours = await createPostgresConsumptionStore({ pool: old.pool }).consumption(balanceId, {
          from: new Date('2026-03-01T00:00:00Z'),
          to: new Date('2026-03-02T00:00:00Z'),
          bucket: 'hour',
        });
        expect(hours).toEqual([{ start: new Date('2026-03-01T10:00:00Z'), event: 'api_call', credits: 3_000_000n, entries: 2 }]);
      } finally {
        await oldStore.close();
        await old.drop();
      }
    } finally {
      await rm(before014, { recursive: true, force: true });
    }
  });
});
