import pino from 'pino';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { benchBalances, openBalances } from './benchBalances';
import { decideAppends, usageCommands } from './ledgerWorkload';
import { ledgerStorage } from './tableStorage';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

// The metering run's figure: every usage event the consumer meters also leaves a row in
// append_markers, in the same transaction and for ever, so that row is part of what a ledger
// event costs on disk.
describe('ledgerStorage', () => {
  let db: TestSchema;
  let store: EventStore;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'bench_ledger_storage' });
    store = createPostgresEventStore({ pool: db.pool, logger });
  });

  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  it("counts the append markers' rows, heap, TOAST and indexes, in the bytes per ledger event, and lists their share", async () => {
    const at = new Date().toISOString();
    const balances = benchBalances(20);
    await openBalances(store, balances, at);
    // As the consumer meters: each usage event's charges and its marker in one append.
    for (let from = 0; from < 2000; from += 500) {
      const commands = usageCommands(balances, from, 500, 'storage', at);
      await store.appendMany(decideAppends(commands), { markers: commands.map((command) => `usage:${command.commandId}`) });
    }
    const { rows } = await db.pool.query<{ events: string; markers: string; events_bytes: string; markers_bytes: string }>(
      `SELECT (SELECT count(*) FROM event_log) AS events, (SELECT count(*) FROM append_markers) AS markers,
              pg_total_relation_size('event_log') AS events_bytes, pg_total_relation_size('append_markers') AS markers_bytes`,
    );
    const events = Number(rows[0]!.events);
    const markersBytes = Number(rows[0]!.markers_bytes);
    expect(Number(rows[0]!.markers)).toBe(2000);
    expect(markersBytes).toBeGreaterThan(0);

    const storage = await ledgerStorage(db.pool);
    expect(storage.events.rows).toBe(events);
    expect(storage.markers.rows).toBe(2000);
    expect(storage.markers.totalBytes).toBe(markersBytes);
    expect(storage.markerBytesPerEvent).toBeCloseTo(markersBytes / events, 6);
    expect(storage.bytesPerEvent).toBeCloseTo((Number(rows[0]!.events_bytes) + markersBytes) / events, 6);
    expect(storage.bytesPerEvent).toBeGreaterThan(storage.events.bytesPerRow);
  });
});
