import pino from 'pino';
import { createTestSchema, createUnreachablePool } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import { describeEventStoreConformance } from './testing/eventStoreConformance';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describeEventStoreConformance('PostgreSQL', {
  // A schema of its own; positions from one sequence, drawn under the append lock.
  isolated: true,
  contiguousPositions: true,
  async open() {
    const db = await createTestSchema({ prefix: 'es_conformance', max: 12 });
    // Live delivery through NOTIFY; the poll interval only bounds a lost notification.
    const store = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events`, pollIntervalMs: 1000 });
    return {
      store,
      async close() {
        await store.close();
        await db.drop();
      },
    };
  },
  async unreachable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const pool = createUnreachablePool('es-conformance-down');
    const store = createPostgresEventStore({ pool, logger });
    return {
      store,
      async close() {
        await store.close();
        await pool.end();
      },
    };
  },
});
