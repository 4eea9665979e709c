import { BALANCE_FOLD_VERSION } from '@tally/domain';
import { createPostgresEventStore, EventStore } from '@tally/event-store';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createBalanceProjector, BalanceProjector } from './balanceProjector';
import { createBalanceReadModel, BalanceReadModel } from './balanceReadModel';
import { createGenerationStore, NewerProjectionError, StoreBehindProjectionError } from './generationStore';
import type { RebuildProgress } from './rebuildProgress';
import { replayBalances } from './replayBalances';
import { AsideGenerationLeftError } from './startAsideBuild';
import { createLedgerWriter, LedgerWriter } from './testing/ledgerWriter';
import { caughtUp, expectServedExactly } from './testing/projectionChecks';
import { createTestRedis, TestRedis } from './testing/testRedis';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('replayBalances (PostgreSQL event store, Redis)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let writer: LedgerWriter;
  let testRedis: TestRedis;
  let readModel: BalanceReadModel;
  let projector: BalanceProjector | undefined;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'replay' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    writer = createLedgerWriter(eventStore, 7);
  });

  afterAll(async () => {
    await eventStore.close();
    await db.drop();
  });

  beforeEach(() => {
    testRedis = createTestRedis('replay');
    readModel = createBalanceReadModel({ redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix });
  });

  afterEach(async () => {
    await projector?.stop();
    projector = undefined;
    await testRedis.close();
  });

  const replay = (onProgress?: (progress: RebuildProgress) => void) =>
    replayBalances({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, batchSize: 100, onProgress });

  it('rebuilds into a fresh generation while the live one serves and moves on, then switches and deletes the old one', async () => {
    const ids = await writer.open(60, { customers: 12 });
    await writer.activity(ids, 10);
    projector = createBalanceProjector({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, pollIntervalMs: 50 });
    await projector.start();
    await caughtUp(readModel, eventStore);
    const redis = testRedis.connect();
    const before = await redis.get(`${testRedis.keyPrefix}:active`);

    // Readers and writers keep going for the whole replay: no balance may ever be missing,
    // and no reader may see a balance go back in time.
    let replaying = true;
    const reading = (async () => {
      const seen = new Map<string, bigint>();
      let reads = 0;
      while (replaying) {
        for (const snapshot of await Promise.all(ids.map((id) => readModel.getBalance(id)))) {
          expect(snapshot).toBeDefined();
          const position = BigInt(snapshot!.position);
          expect(position).toBeGreaterThanOrEqual(seen.get(snapshot!.balanceId) ?? 0n);
          seen.set(snapshot!.balanceId, position);
        }
        reads += 1;
      }
      return reads;
    })();
    const appending = (async () => {
      while (replaying) await writer.activity(ids.slice(0, 10), 1);
    })();
    const progress: RebuildProgress[] = [];
    const result = await replay((update) => progress.push(update)).finally(() => {
      replaying = false;
    });
    expect(await reading).toBeGreaterThan(0);
    await appending;

    expect(result).toMatchObject({ previous: before });
    expect(result.events).toBeGreaterThan(ids.length * 10);
    expect(result.deletedKeys).toBeGreaterThan(ids.length);
    await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(result.generation);
    const keys = await testRedis.keys();
    expect(keys.filter((key) => !key.startsWith(`${testRedis.keyPrefix}:${result.generation}:`))).toEqual([`${testRedis.keyPrefix}:active`]);

    const last = progress[progress.length - 1]!;
    expect(last.done).toBe(last.total);
    expect(last).toMatchObject({ etaSeconds: 0 });
    expect(last.ratePerSecond).toBeGreaterThan(0);
    expect(progress.map((update) => update.done)).toEqual([...progress.map((update) => update.done)].sort((a, b) => a - b));

    // The live projector noticed the switch and goes on in the new generation.
    await writer.activity(ids, 2);
    await expectServedExactly(readModel, eventStore);
    await waitFor(() => projector!.lag().events === 0n, { description: 'the live projector to catch up in the new generation' });
  });

  it('after Redis lost everything, a replay serves exactly the balances served before', async () => {
    const ids = await writer.open(30, { customers: 6 });
    await writer.activity(ids, 5);
    await replay();
    await expectServedExactly(readModel, eventStore);
    const served = await Promise.all(ids.map((id) => readModel.getBalance(id)));
    // The workload holds credits, so the three figures are part of what must come back.
    expect(served.some((snapshot) => snapshot!.held !== '0' && snapshot!.available !== snapshot!.balance)).toBe(true);

    await testRedis.deleteAll();
    await expect(readModel.getBalance(ids[0]!)).resolves.toBeUndefined();
    const result = await replay();
    expect(result.previous).toBeUndefined();
    expect(await Promise.all(ids.map((id) => readModel.getBalance(id)))).toEqual(served);
    await expectServedExactly(readModel, eventStore);
  });

  it('rebuilds exactly with too small a cache for the balances, reading the evicted ones back from Redis', async () => {
    const ids = await writer.open(25, { customers: 5 });
    await writer.activity(ids, 4);
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const redis = testRedis.connect();
    await replayBalances({ eventStore, redis, keyPrefix: testRedis.keyPrefix, logger: watched, batchSize: 30, snapshotCacheSize: 7 });
    await expectServedExactly(readModel, eventStore);
    // Had an evicted balance been taken for a new one, the fold would have healed it from its stream, with a warning.
    expect(warnings).toEqual([]);
  });

  it('stopped half way (Ctrl-C), deletes the generation it was building; the live one serves on', async () => {
    const ids = await writer.open(40, { customers: 8 });
    await writer.activity(ids, 6);
    await replay();
    const redis = testRedis.connect();
    const active = await redis.get(`${testRedis.keyPrefix}:active`);
    const served = await testRedis.keys();
    const stop = new AbortController();
    const stopped = replayBalances({
      eventStore,
      redis,
      keyPrefix: testRedis.keyPrefix,
      logger,
      // Pages small enough, and a cache small enough, that it writes after the first pages.
      batchSize: 20,
      snapshotCacheSize: 25,
      signal: stop.signal,
      // After its first write landed: its generation holds keys by then.
      onProgress: () => stop.abort(new Error('interrupted')),
    });
    await expect(stopped).rejects.toThrow('interrupted');
    expect(await redis.get(`${testRedis.keyPrefix}:active`)).toBe(active);
    expect((await testRedis.keys()).sort()).toEqual(served.sort());
    await expectServedExactly(readModel, eventStore);
  });

  it('stopped, with the generation it was building not deletable, says so rather than claim the deletion, and the next replay deletes it', async () => {
    const ids = await writer.open(20, { customers: 4 });
    await writer.activity(ids, 4);
    const redis = testRedis.connect();
    const stop = new AbortController();
    const interrupted = new Error('interrupted');
    const unlink = jest.spyOn(redis, 'unlink').mockRejectedValue(new Error('connection lost while deleting'));
    const stopped = replayBalances({ eventStore, redis, keyPrefix: testRedis.keyPrefix, logger, batchSize: 10, snapshotCacheSize: 5, signal: stop.signal, onProgress: () => stop.abort(interrupted) });
    const error = await stopped.then(() => undefined, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(AsideGenerationLeftError);
    expect((error as AsideGenerationLeftError).cause).toBe(interrupted);
    const left = (error as AsideGenerationLeftError).generation;
    expect((error as Error).message).toContain(`the generation being built, ${left}, could not be deleted (connection lost while deleting)`);
    unlink.mockRestore();
    expect((await testRedis.keys()).some((key) => key.startsWith(`${testRedis.keyPrefix}:${left}:`))).toBe(true);
    // Its heartbeat stopped with it: once that is past the bound, the next replay deletes it.
    await redis.zadd(createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix }).keys.building, 0, left);
    await replay();
    expect((await testRedis.keys()).some((key) => key.startsWith(`${testRedis.keyPrefix}:${left}:`))).toBe(false);
  });

  it('keeps the generation it switched to when the answer of the switch is lost', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    const redis = testRedis.connect();
    const evalsha = redis.evalsha.bind(redis) as (...args: unknown[]) => Promise<unknown>;
    // The script ran, its answer never came (a connection cut just then).
    (redis as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = async (...args) => {
      const reply = await evalsha(...args);
      if (Array.isArray(reply) && reply[0] === 'switched') throw new Error('connection lost before the answer');
      return reply;
    };
    await expect(replayBalances({ eventStore, redis, keyPrefix: testRedis.keyPrefix, logger, batchSize: 100 })).rejects.toThrow('connection lost before the answer');
    await expectServedExactly(readModel, eventStore);
  });

  it('succeeds once readers are switched though the generation it replaced cannot be deleted, and says how to delete it', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    const first = await replay();
    const redis = testRedis.connect();
    jest.spyOn(redis, 'unlink').mockRejectedValue(new Error('connection lost while deleting'));
    const warnings: { msg: string; generation?: string }[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    const result = await replayBalances({ eventStore, redis, keyPrefix: testRedis.keyPrefix, logger: watched, batchSize: 100 });
    expect(result).toMatchObject({ previous: first.generation, deletedKeys: 0, undeleted: first.generation });
    await expect(testRedis.connect().get(`${testRedis.keyPrefix}:active`)).resolves.toBe(result.generation);
    await expectServedExactly(readModel, eventStore);
    const pattern = `${testRedis.keyPrefix}:${first.generation}:*`;
    expect(warnings).toContainEqual(expect.objectContaining({ generation: first.generation, msg: expect.stringContaining(`--pattern '${pattern}'`) }));
    expect((await testRedis.keys()).some((key) => key.startsWith(`${testRedis.keyPrefix}:${first.generation}:`))).toBe(true);
  });

  it("will not switch over a generation a newer release folded, and deletes the one it built", async () => {
    const ids = await writer.open(5);
    await writer.activity(ids, 2);
    const first = await replay();
    const admin = testRedis.connect();
    await admin.set(`${testRedis.keyPrefix}:${first.generation}:version`, String(BALANCE_FOLD_VERSION + 1));
    const before = (await testRedis.keys()).sort();
    await expect(replay()).rejects.toThrow(NewerProjectionError);
    await expect(admin.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(first.generation);
    expect((await testRedis.keys()).sort()).toEqual(before);
  });

  it('marks the generation it switches to fresh as of its final read, so entitlement checks have a lagMs at once', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    const before = Date.now();
    await replay();
    const after = Date.now();
    // No projector runs: only the replay's switch can have said how fresh the generation is.
    const served = (await readModel.getBalance(ids[0]!))!;
    const { freshAsOf } = await readModel.getEntitlement(served.customerId, served.productId);
    expect(freshAsOf).toBeGreaterThanOrEqual(before);
    expect(freshAsOf).toBeLessThanOrEqual(after);
  });

  /** A live generation projected from this test's store, and another store whose head is below its checkpoint. */
  async function withStoreBehindLive(work: (otherStore: EventStore, live: string, checkpoint: bigint) => Promise<void>): Promise<void> {
    const ids = await writer.open(40, { customers: 8 });
    await writer.activity(ids, 10);
    projector = createBalanceProjector({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, pollIntervalMs: 50 });
    await projector.start();
    await caughtUp(readModel, eventStore);
    await projector.stop();
    projector = undefined;
    const redis = testRedis.connect();
    const live = (await redis.get(`${testRedis.keyPrefix}:active`))!;
    const checkpoint = BigInt((await redis.get(`${testRedis.keyPrefix}:${live}:checkpoint`))!);
    // The store switched to: fewer events, so its head is below the live checkpoint.
    const otherDb = await createTestSchema({ prefix: 'replay_other' });
    const otherStore = createPostgresEventStore({ pool: otherDb.pool, logger, pollIntervalMs: 100 });
    try {
      const otherWriter = createLedgerWriter(otherStore, 5);
      await otherWriter.activity(await otherWriter.open(3, { customers: 1 }), 2);
      expect(await otherStore.headPosition()).toBeLessThan(checkpoint);
      await work(otherStore, live, checkpoint);
    } finally {
      await otherStore.close();
      await otherDb.drop();
    }
  }

  it('refuses up front, naming the head and the checkpoint, to replace a live generation whose checkpoint is above the head of the event store', async () => {
    await withStoreBehindLive(async (otherStore, live, checkpoint) => {
      const redis = testRedis.connect();
      const before = (await testRedis.keys()).sort();
      const head = await otherStore.headPosition();
      let batches = 0;
      // An operator shell pointed at the wrong database must not replace what is served, and is
      // told so before a whole rebuild rather than after it.
      const refused = replayBalances({
        eventStore: otherStore,
        redis,
        keyPrefix: testRedis.keyPrefix,
        logger,
        batchSize: 1,
        onProgress: () => {
          batches += 1;
        },
        signal: AbortSignal.timeout(15_000),
      });
      await expect(refused).rejects.toThrow(StoreBehindProjectionError);
      await expect(refused).rejects.toThrow(`head is at position ${head}, below the live generation's checkpoint, ${checkpoint}`);
      expect(batches).toBe(0);
      await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(live);
      expect((await testRedis.keys()).sort()).toEqual(before);
    });
  });

  it('refuses at the switch too when the live generation got above the head while it rebuilt, and deletes what it built', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    const first = await replay();
    const redis = testRedis.connect();
    const store = createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix });
    const before = (await testRedis.keys()).sort();
    const ahead = (await eventStore.headPosition()) + 1_000_000n;
    let moved = false;
    // Past the check up front: the live generation is then moved above the head (projected meanwhile from another store).
    const refused = replayBalances({
      eventStore,
      redis,
      keyPrefix: testRedis.keyPrefix,
      logger,
      batchSize: 10,
      onProgress: () => {
        if (moved) return;
        moved = true;
        void redis.set(store.keys.checkpoint(first.generation), ahead.toString());
      },
      signal: AbortSignal.timeout(15_000),
    });
    await expect(refused).rejects.toThrow(StoreBehindProjectionError);
    await expect(refused).rejects.toThrow(`below the live generation's checkpoint, ${ahead}`);
    expect(moved).toBe(true);
    await expect(redis.get(store.keys.active)).resolves.toBe(first.generation);
    expect((await testRedis.keys()).sort()).toEqual(before);
  });

  it('says another replay or verify swept its generation as stale when one did, and starts over', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    await replay();
    const redis = testRedis.connect();
    const sweeper = createGenerationStore({ redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix });
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    let reads = 0;
    let swept: string[] = [];
    // Before its second read: its heartbeat late past the bound (a paused process), another
    // replay sweeps its generation.
    const pausing: EventStore = {
      ...eventStore,
      readAllPayloads: async (options) => {
        reads += 1;
        if (reads === 2) {
          const [building] = await redis.zrange(sweeper.keys.building, 0, -1);
          await redis.zadd(sweeper.keys.building, 0, building!);
          swept = await sweeper.deleteAbandonedAsides(60_000);
        }
        return eventStore.readAllPayloads(options);
      },
    };
    const result = await replayBalances({ eventStore: pausing, redis, keyPrefix: testRedis.keyPrefix, logger: watched, batchSize: 10 });
    expect(swept).toHaveLength(1);
    expect(result.generation).not.toBe(swept[0]);
    expect(warnings).toContainEqual(expect.stringContaining('another replay or verify swept it as stale'));
    expect(warnings.join('\n')).not.toContain('Redis flushed');
    await expectServedExactly(readModel, eventStore);
  });

  it('when told to, switches, saying why, over a live generation whose checkpoint is above the head of the event store (another store, or a restored one)', async () => {
    await withStoreBehindLive(async (otherStore, live) => {
      const redis = testRedis.connect();
      const warnings: { msg: string }[] = [];
      const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
      // Without the head's say, the switch answered 'behind' for ever and the replay spun.
      const result = await replayBalances({
        eventStore: otherStore,
        redis,
        keyPrefix: testRedis.keyPrefix,
        logger: watched,
        batchSize: 100,
        replaceAheadProjection: true,
        signal: AbortSignal.timeout(15_000),
      });
      expect(result.previous).toBe(live);
      await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(result.generation);
      expect(warnings).toContainEqual(expect.objectContaining({ msg: expect.stringContaining('the event store is behind the live generation') }));
      await expectServedExactly(readModel, otherStore);
      const keys = await testRedis.keys();
      expect(keys.filter((key) => !key.startsWith(`${testRedis.keyPrefix}:${result.generation}:`))).toEqual([`${testRedis.keyPrefix}:active`]);
    });
  });

  it('deletes a generation a killed replay left (its heartbeat stale), and only that one', async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    await replay();
    const redis = testRedis.connect();
    const store = createGenerationStore({ redis, keyPrefix: testRedis.keyPrefix });
    // What a replay killed mid-way (SIGKILL, OOM) leaves: an aside with snapshots, no finally run.
    const killed = await store.createAside();
    await store.writeBatch(killed, 'aside', [...(await store.readSnapshots((await store.readActive())!.generation, ids)).values()].filter((s) => s !== undefined), 5n);
    // One still being built by a live replay elsewhere: its beat is fresh.
    const building = await store.createAside();
    const building_keys = (await testRedis.keys()).filter((key) => key.startsWith(`${testRedis.keyPrefix}:${building}:`)).sort();
    // The killed one's last beat, long past the bound.
    await redis.zadd(store.keys.building, 0, killed);
    expect((await testRedis.keys()).some((key) => key.startsWith(`${testRedis.keyPrefix}:${killed}:balance:`))).toBe(true);

    const result = await replay();
    const keys = await testRedis.keys();
    expect(keys.filter((key) => key.startsWith(`${testRedis.keyPrefix}:${killed}:`))).toEqual([]);
    expect(keys.filter((key) => key.startsWith(`${testRedis.keyPrefix}:${building}:`)).sort()).toEqual(building_keys);
    expect(await redis.zrange(store.keys.building, 0, -1)).toEqual([building]);
    await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(result.generation);
    await expectServedExactly(readModel, eventStore);
  });

  it('rejects a batch size that is not a positive integer before touching anything', async () => {
    await expect(
      replayBalances({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, batchSize: Number('x') }),
    ).rejects.toThrow(RangeError);
    expect(await testRedis.keys()).toEqual([]);
  });
});
