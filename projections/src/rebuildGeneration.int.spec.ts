import { createPostgresEventStore, EventStore } from '@tally/event-store';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createBalanceReadModel } from './balanceReadModel';
import type { BalanceSnapshot } from './balanceSnapshot';
import { createGenerationStore, type GenerationStore } from './generationStore';
import { rebuildGeneration } from './rebuildGeneration';
import { createSnapshotCache } from './snapshotCache';
import { createLedgerWriter, LedgerWriter } from './testing/ledgerWriter';
import { expectServedExactly } from './testing/projectionChecks';
import { createTestRedis, TestRedis } from './testing/testRedis';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/** What the rebuild asked Redis to write, script by script, through the real store. */
interface WriteCall {
  readonly balanceIds: readonly string[];
  readonly checkpoint: bigint;
}

function recording(store: GenerationStore): { store: GenerationStore; calls: WriteCall[] } {
  const calls: WriteCall[] = [];
  return {
    calls,
    store: {
      ...store,
      writeBatch(generation, mode, snapshots: readonly BalanceSnapshot[], checkpoint, written) {
        calls.push({ balanceIds: snapshots.map((snapshot) => snapshot.balanceId), checkpoint });
        return store.writeBatch(generation, mode, snapshots, checkpoint, written);
      },
    },
  };
}

describe('rebuildGeneration (PostgreSQL event store, Redis)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let writer: LedgerWriter;
  let testRedis: TestRedis;

  // Each test its own log: the counts below are of every event and balance in it.
  beforeEach(async () => {
    db = await createTestSchema({ prefix: 'rebuild' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    writer = createLedgerWriter(eventStore, 11);
    testRedis = createTestRedis('rebuild');
  });

  afterEach(async () => {
    await testRedis.close();
    await eventStore.close();
    await db.drop();
  });

  /** Rebuilds the whole log aside through a recording store, then switches readers to it. */
  async function rebuild(batchSize: number, options: { cacheSize?: number; logger?: pino.Logger } = {}) {
    const redis = testRedis.connect();
    const real = createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix });
    await real.ensureActive(0n);
    const { store, calls } = recording(real);
    const generation = await store.createAside();
    const landed: { position: bigint; events: number }[] = [];
    const result = await rebuildGeneration({
      eventStore,
      store,
      logger: options.logger ?? logger,
      generation,
      cache: createSnapshotCache(options.cacheSize),
      batchSize,
      after: 0n,
      onBatch: (position, events) => landed.push({ position, events }),
    });
    expect(result.outcome).toBe('ok');
    expect(await real.switchActive(generation)).toMatchObject({ kind: 'switched' });
    return { result, calls, landed, readModel: createBalanceReadModel({ redis, keyPrefix: testRedis.keyPrefix }) };
  }

  it('folds many pages in memory and writes each balance once, in scripts of a page each, moving the checkpoint with the last', async () => {
    const ids = await writer.open(12, { customers: 4 });
    await writer.activity(ids, 6);
    const head = await eventStore.headPosition();
    const events = (await eventStore.readAll({ after: 0n, maxCount: 10_000 })).length;

    // Pages of 5 events over 12 balances: written per page, a balance would be written about once per page it is in.
    const { result, calls, landed, readModel } = await rebuild(5);

    expect(result.position).toBe(head);
    const written = calls.flatMap((call) => call.balanceIds);
    expect([...written].sort()).toEqual([...ids].sort());
    expect(calls.map((call) => call.balanceIds.length)).toEqual([5, 5, 2]);
    // The checkpoint stays where it was until the last script, when every snapshot is in.
    expect(calls.map((call) => call.checkpoint)).toEqual([0n, 0n, head]);
    expect(landed).toEqual([{ position: head, events }]);
    await expectServedExactly(readModel, eventStore);
  });

  it('writes before the cache could drop a balance it has not written, and ends exact with a cache smaller than the log', async () => {
    await writer.activity(await writer.open(14, { customers: 7 }), 4);
    const head = await eventStore.headPosition();
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });

    const started = Date.now();
    const { result, calls, readModel } = await rebuild(3, { cacheSize: 10, logger: watched });

    // Fresh as of the read that came back empty: begun during the rebuild, after every other read.
    expect(result).toEqual({ outcome: 'ok', position: head, atHeadAsOf: expect.any(Number) });
    expect(result.atHeadAsOf).toBeGreaterThanOrEqual(started);
    expect(result.atHeadAsOf).toBeLessThanOrEqual(Date.now());
    // Capacity 10 over 14 balances, pages of 3: writes of 8 balances or more, in scripts of 3 (the
    // cache evicts while one is in flight), each written before its balance could leave the cache.
    expect(calls.some((call) => call.balanceIds.length === 3 && call.checkpoint !== head)).toBe(true);
    await expectServedExactly(readModel, eventStore);
    // A balance read back from Redis before its fold was written would have been healed from its stream, with a warning.
    expect(warnings).toEqual([]);
  });
});
