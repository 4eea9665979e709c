import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import type { EventStore } from './eventStore';

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** How PostgreSQL keeps markers; what markers do is the conformance suite's (testing/eventStoreConformance.ts). */
describe('append markers on PostgreSQL', () => {
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

  it('keeps a marker 16 bytes long, whatever the length of what it marks', async () => {
    const long = `${marker()}:${'x'.repeat(10_000)}`;
    await store.appendMany([], { markers: [long] });
    const { rows } = await db.pool.query<{ bytes: number }>('SELECT max(octet_length(marker_hash)) AS bytes FROM append_markers');
    expect(rows[0]!.bytes).toBe(16);
    expect(await store.readMarkers([long])).toEqual(new Set([long]));
  });
});
