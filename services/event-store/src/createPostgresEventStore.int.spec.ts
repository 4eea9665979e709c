import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { createTestSchema } from '@tally/test-support';
import { createPostgresEventStore } from './createPostgresEventStore';
import type { EventToAppend } from './eventStore';

/**
 * What PostgreSQL's store does beyond the port (the port's behaviour, and PostgreSQL's contiguous
 * positions, are the conformance suite's: postgresEventStore.conformance.int.spec.ts): a stream
 * longer than a page of readStreamsPaged has pages of its own (groupStreamsByEvents); an empty
 * schema starts at 0.
 */

jest.setTimeout(30_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

function events(count: number): EventToAppend[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Tested', data: { i } }));
}

describe('PostgreSQL event store paged reads', () => {
  it('gives a stream longer than a page pages of its own, and groups short streams', async () => {
    const db = await createTestSchema({ prefix: 'es_paged' });
    const store = createPostgresEventStore({ pool: db.pool, logger });
    try {
      const lengths = [1, 3, 12, 2, 2, 4, 9];
      const ids = lengths.map(() => `balance-${randomUUID()}`);
      await store.appendMany(ids.map((streamId, i) => ({ streamId, expectedRevision: 'no_stream', events: events(lengths[i]!) })));
      const pages: string[][] = [];
      for await (const page of store.readStreamsPaged(ids, { maxPageEvents: 4 })) pages.push(page.map((e) => e.streamId));
      expect(pages.filter((page) => page.every((id) => id === ids[2])).map((page) => page.length)).toEqual([4, 4, 4]);
      expect(pages.filter((page) => page.every((id) => id === ids[6])).map((page) => page.length)).toEqual([4, 4, 1]);
      expect(pages.flat()).toHaveLength(33);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});

describe('PostgreSQL event store on an empty schema', () => {
  it('has head position 0 and nothing to read', async () => {
    const db = await createTestSchema({ prefix: 'es_empty' });
    const store = createPostgresEventStore({ pool: db.pool, logger });
    try {
      expect(await store.headPosition()).toBe(0n);
      expect(await store.readAll()).toEqual([]);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
