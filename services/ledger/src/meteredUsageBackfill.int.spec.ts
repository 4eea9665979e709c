import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPostgresEventStore } from '@tally/event-store';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '@tally/postgres';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { meteredUsageMarker } from './deterministicId';

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/**
 * Migration 005 derives the markers of usage metered before it from the stored CreditConsumed
 * events; they must be the very markers the consumer checks, or that usage would be charged again
 * on its next delivery.
 */
describe('migration 005 backfills the metered-usage markers', () => {
  let db: TestSchema;
  let before005: string;

  beforeAll(async () => {
    before005 = await mkdtemp(path.join(tmpdir(), 'tally-migrations-'));
    for (const file of await readdir(DEFAULT_MIGRATIONS_DIR)) {
      if (/^00[1-4]_.*\.sql$/.test(file)) await cp(path.join(DEFAULT_MIGRATIONS_DIR, file), path.join(before005, file));
    }
    db = await createTestSchema({ prefix: 'markers_backfill', migrationsDir: before005 });
  });

  afterAll(async () => {
    await db.drop();
    await rm(before005, { recursive: true, force: true });
  });

  it('marks every usage event a stored CreditConsumed records, and nothing else', async () => {
    const customers = ['acme', 'c:1', '100%', 'ünï:%3A'];
    const usageIds = ['u-1', 'evt:2024:7', '50%off', '%3A', 'ɸ'];
    const charged: [string, string][] = [];
    for (const customerId of customers) {
      for (const usageId of usageIds) charged.push([customerId, usageId]);
    }
    // Written as the store of that time did (001's append_events): today's event store writes
    // the compact ledger of 017, which this schema does not have yet.
    const requests = JSON.stringify(
      customers.map((customerId) => ({
        streamId: `balance-${randomUUID()}`,
        expectedRevision: 'no_stream' as const,
        events: usageIds.map((usageId) => ({
          id: randomUUID(),
          type: 'CreditConsumed',
          data: { credits: '1', balanceAfter: '0', usage: { eventId: usageId, event: 'api_call', timestamp: '2026-01-01T00:00:00.000Z', quantity: '1' } },
          metadata: { schemaVersion: 1, customerId, balanceId: 'b', productId: 'p', causationId: 'c' },
        })),
      })),
    );
    await db.pool.query('SELECT * FROM append_events($1::jsonb, NULL)', [requests]);

    expect((await migrate({ pool: db.pool, schema: db.schema, logger })).applied).toContain('005_append_markers');
    const eventStore = createPostgresEventStore({ pool: db.pool, logger });

    const markers = charged.map(([customerId, usageId]) => meteredUsageMarker(customerId, usageId));
    expect(await eventStore.readMarkers(markers)).toEqual(new Set(markers));
    // The pairs were never charged: a customer's usage does not mark another customer's.
    expect(await eventStore.readMarkers([meteredUsageMarker('acme', 'never-sent'), meteredUsageMarker('c', '1:u-1')])).toEqual(new Set());
    const { rows } = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM append_markers');
    expect(Number(rows[0]!.n)).toBe(charged.length);
    await eventStore.close();
  });
});
