import { randomUUID } from 'node:crypto';
import { BALANCE_FOLD_VERSION, balanceStreamId } from '@tally/domain';
import { createPostgresEventStore, EventStore, StreamRevisionMismatchError, type SubscribeToAllOptions } from '@tally/event-store';
import pino from 'pino';
import { createTestSchema, startTcpProxy, waitFor, type TestSchema } from '@tally/test-support';
import { createBalanceProjector, BalanceProjector } from './balanceProjector';
import { createBalanceReadModel, BalanceReadModel } from './balanceReadModel';
import type { BalanceSnapshot } from './balanceSnapshot';
import { verifyBalances } from './verifyBalances';
import { createLedgerWriter, LedgerWriter } from './testing/ledgerWriter';
import * as checks from './testing/projectionChecks';
import { createTestRedis, TestRedis } from './testing/testRedis';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('balance projector (PostgreSQL event store, Redis)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let writer: LedgerWriter;
  let testRedis: TestRedis;
  let readModel: BalanceReadModel;
  const running: BalanceProjector[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'projector' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    writer = createLedgerWriter(eventStore);
  });

  afterAll(async () => {
    await eventStore.close();
    await db.drop();
  });

  beforeEach(() => {
    testRedis = createTestRedis('projector');
    readModel = createBalanceReadModel({ redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((projector) => projector.stop()));
    await testRedis.close();
  });

  function startProjector(options: { batchSize?: number; redisPort?: number; logger?: pino.Logger } = {}) {
    // One reconnect per command: an outage surfaces as errors the projector must retry itself.
    const redis = testRedis.connect(
      options.redisPort === undefined ? {} : { port: options.redisPort, host: '127.0.0.1', maxRetriesPerRequest: 1 },
    );
    const projector = createBalanceProjector({
      eventStore,
      redis,
      keyPrefix: testRedis.keyPrefix,
      logger: options.logger ?? logger,
      batchSize: options.batchSize ?? 100,
      pollIntervalMs: 50,
    });
    running.push(projector);
    return {
      projector,
      redis,
      started: projector.start(),
      /** As close to kill -9 as a process can do to itself: the connection drops with writes in flight. */
      kill: async () => {
        redis.disconnect();
        await projector.stop();
      },
    };
  }

  const caughtUp = () => checks.caughtUp(readModel, eventStore);
  const expectExactSnapshots = () => checks.expectServedExactly(readModel, eventStore);

  it('projects every balance exactly, ignores other streams, and reports no lag once caught up', async () => {
    const ids = await writer.open(30, { customers: 10 });
    await writer.activity(ids, 5);
    const { projector, started } = startProjector();
    await started;
    await writer.activity(ids, 5);
    await eventStore.appendToStream(`other-${randomUUID()}`, [{ id: randomUUID(), type: 'Unrelated', data: {} }], {
      expectedRevision: 'no_stream',
    });
    await expectExactSnapshots();
    await waitFor(() => projector.lag().events === 0n, { description: 'no lag' });
    expect(projector.lag()).toEqual({ events: 0n, seconds: 0 });
    expect(projector.checkpoint()).toBe(await eventStore.headPosition());
    await expect(readModel.getBalance(randomUUID())).resolves.toBeUndefined();
    await expect(readModel.getCustomerBalances('nobody')).resolves.toEqual([]);
  });

  it('answers an entitlement read with the balance of the product, the checkpoint and how fresh it is, in one script', async () => {
    const ids = await writer.open(6, { customers: 2 });
    await writer.activity(ids, 4);
    const { projector, started } = startProjector();
    await started;
    await expectExactSnapshots();
    const snapshot = (await readModel.getBalance(ids[3]!))!;
    // Fresh once a poll found the projector at the head.
    const read = await waitFor(
      async () => {
        const found = await readModel.getEntitlement(snapshot.customerId, snapshot.productId);
        return found.freshAsOf !== undefined && found.checkpoint === projector.checkpoint() ? found : undefined;
      },
      { description: 'a fresh entitlement read' },
    );
    expect(read.snapshot).toEqual(snapshot);
    expect(read.checkpoint).toBeGreaterThanOrEqual(BigInt(snapshot.position));
    expect(read.freshAsOf).toBeLessThanOrEqual(Date.now());
    await expect(readModel.getEntitlement(snapshot.customerId, 'no-such-product')).resolves.toMatchObject({ snapshot: undefined, checkpoint: read.checkpoint });
    await expect(readModel.getEntitlement('nobody', snapshot.productId)).resolves.toMatchObject({ snapshot: undefined });
  });

  it('writes a batch of balances it folded before in one round trip, without reading their snapshots back', async () => {
    const ids = await writer.open(10);
    const { projector, redis, started } = startProjector({ batchSize: 1000 });
    await started;
    await caughtUp();
    // Scripts by their number of keys: reading snapshots is the only one that takes none.
    const scripts: number[] = [];
    const evalsha = redis.evalsha.bind(redis) as (...args: unknown[]) => Promise<unknown>;
    jest.spyOn(redis, 'evalsha').mockImplementation(((...args: unknown[]) => {
      scripts.push(Number(args[1]));
      return evalsha(...args);
    }) as typeof redis.evalsha);
    await writer.activity(ids, 2);
    await caughtUp();
    // Written (checkpoint and snapshots at the head), and no snapshot read back to get there.
    await expectExactSnapshots();
    expect(projector.checkpoint()).toBe(await eventStore.headPosition());
    expect(scripts.filter((keys) => keys === 0)).toEqual([]);
  });

  it('changes nothing when it applies events again (checkpoint moved back)', async () => {
    const ids = await writer.open(20);
    await writer.activity(ids, 3);
    const first = startProjector();
    await first.started;
    await caughtUp();
    await first.projector.stop();
    const before = await Promise.all(ids.map((id) => readModel.getBalance(id)));

    const active = await testRedis.connect().get(`${testRedis.keyPrefix}:active`);
    await testRedis.connect().set(`${testRedis.keyPrefix}:${active}:checkpoint`, '0');
    const second = startProjector({ batchSize: 7 });
    await second.started;
    expect(second.projector.checkpoint()).toBe(0n);
    await caughtUp();
    expect(await Promise.all(ids.map((id) => readModel.getBalance(id)))).toEqual(before);
  });

  /** Every key under the test's prefix as DUMP blobs: what an RDB snapshot or a lagging replica holds. */
  async function snapshotRedis(): Promise<Map<string, Buffer>> {
    const admin = testRedis.connect();
    const dumps = new Map<string, Buffer>();
    for (const key of await testRedis.keys()) {
      const dump = await admin.dumpBuffer(key);
      if (dump !== null) dumps.set(key, dump);
    }
    return dumps;
  }

  /**
   * Puts the prefix back exactly as snapshotted (keys written since are gone, older values are
   * back) in one transaction, as a restart from an RDB file or a failover looks to a client: the
   * projector never sees the keys half gone, which would read as a flush instead.
   */
  async function restoreRedis(dumps: Map<string, Buffer>): Promise<void> {
    const transaction = testRedis.connect().multi();
    const current = await testRedis.keys();
    if (current.length > 0) transaction.del(...current);
    for (const [key, dump] of dumps) transaction.restore(key, 0, dump, 'REPLACE');
    await transaction.exec();
  }

  it('heals from a rollback of Redis (an older snapshot restored while it runs): verify then finds no difference', async () => {
    const ids = await writer.open(30, { customers: 6 });
    await writer.activity(ids, 3);
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const { projector, started } = startProjector({ batchSize: 20, logger: watched });
    await started;
    await caughtUp();
    const older = await snapshotRedis();
    const olderCheckpoint = (await readModel.servedCheckpoint())!;

    // Written after the snapshot: activity on the first 20 balances and 4 new balances. None of
    // them is written again after the rollback, so only projecting again from the restored
    // checkpoint can bring them back.
    await writer.activity(ids.slice(0, 20), 4);
    const opened = await writer.open(4, { customers: 2 });
    await caughtUp();
    const projected = projector.checkpoint();
    expect(projected).toBeGreaterThan(olderCheckpoint);

    await restoreRedis(older);
    // More events, on the other balances only.
    await writer.activity(ids.slice(20), 2);

    await caughtUp();
    await waitFor(() => projector.checkpoint() >= projected, { description: 'the projector past where it was before the rollback' });
    const verified = await verifyBalances({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, batchSize: 50 });
    // The file's event store also holds the balances of the tests before this one.
    expect(verified.balances).toBeGreaterThanOrEqual(ids.length + opened.length);
    expect(verified.differences).toEqual([]);
    await expectExactSnapshots();
    expect(warnings).toContain('the checkpoint moved backwards: projecting again from it');
  });

  it('heals from a rollback of Redis while no event arrives (its poll notices), serving none of the rolled-back figures once it has', async () => {
    const ids = await writer.open(10);
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    // Small batches: projecting again passes through many older states of these balances.
    const { projector, started } = startProjector({ logger: watched, batchSize: 5 });
    await started;
    await caughtUp();
    const older = await snapshotRedis();
    await writer.activity(ids, 6);
    await caughtUp();
    const projected = projector.checkpoint();
    const served = (await Promise.all(ids.map((id) => readModel.getBalance(id)))).map((snapshot) => snapshot!);

    await restoreRedis(older);
    // Nothing is written after the rollback: the poll compares the checkpoint with what it wrote.
    // Once it has noticed, readers get nothing (the API folds) until it is back where it was, never
    // the rolled-back figures: `balance id: position` of every older one read after that.
    const rolledBack: string[] = [];
    await waitFor(
      async () => {
        const noticed = warnings.includes('the checkpoint moved backwards: projecting again from it');
        const back = noticed && ((await readModel.servedCheckpoint()) ?? -1n) >= projected;
        const snapshots = await Promise.all(ids.map((id) => readModel.getBalance(id)));
        snapshots.forEach((snapshot, index) => {
          if (noticed && snapshot !== undefined && snapshot.position !== served[index]!.position) rolledBack.push(`${ids[index]}: ${snapshot.position}`);
        });
        return back;
      },
      { description: 'the rollback noticed, and the checkpoint back where it was', intervalMs: 1 },
    );
    expect(rolledBack).toEqual([]);
    await expectExactSnapshots();
  });

  it('is killed mid-stream and a new instance ends with exact snapshots', async () => {
    const ids = await writer.open(40, { customers: 8 });
    const first = startProjector({ batchSize: 25 });
    await first.started;
    const appending = writer.activity(ids, 25);
    await waitFor(() => first.projector.checkpoint() > 100n, { description: 'the first instance to be mid-stream' });
    await first.kill();
    const killedAt = first.projector.checkpoint();
    await appending;
    expect(killedAt).toBeLessThan(await eventStore.headPosition());

    const second = startProjector({ batchSize: 25 });
    await second.started;
    expect(second.projector.checkpoint()).toBeGreaterThanOrEqual(killedAt);
    await writer.activity(ids, 2);
    await expectExactSnapshots();
  });

  it('restores every snapshot on its own after the keys are flushed, with no new event to trigger it, serving none older meanwhile', async () => {
    const ids = await writer.open(25, { customers: 5 });
    await writer.activity(ids, 4);
    // Small batches: the rebuild passes through many older states of these balances.
    const { started } = startProjector({ batchSize: 10 });
    await started;
    await expectExactSnapshots();
    const served = (await Promise.all(ids.map((id) => readModel.getBalance(id)))).map((snapshot) => snapshot!);

    // FLUSHALL as far as this prefix goes; the projector detects both the same way (its keys vanish).
    await testRedis.deleteAll();
    // Every read while the projector rebuilds, as `balance id: position`: none (the API then folds
    // from the event store) or the position served before the flush, never an older one.
    const older: string[] = [];
    const check = (snapshot: BalanceSnapshot | undefined, balanceId: string) => {
      const before = served.find((candidate) => candidate.balanceId === balanceId)!;
      if (snapshot !== undefined && snapshot.position !== before.position) older.push(`${balanceId}: ${snapshot.position} (served ${before.position})`);
    };
    await waitFor(
      async () => {
        const [balances, entitlements, lists] = await Promise.all([
          Promise.all(ids.map((id) => readModel.getBalance(id))),
          Promise.all(served.map((snapshot) => readModel.getEntitlement(snapshot.customerId, snapshot.productId))),
          Promise.all([...new Set(served.map((snapshot) => snapshot.customerId))].map((customerId) => readModel.getCustomerBalances(customerId))),
        ]);
        balances.forEach((snapshot, index) => check(snapshot, ids[index]!));
        entitlements.forEach((read, index) => check(read.snapshot, ids[index]!));
        for (const snapshot of lists.flat()) check(snapshot, snapshot.balanceId);
        expect(balances).toEqual(served);
        return true;
      },
      { description: 'the snapshots served before the flush to be back', intervalMs: 1 },
    );
    expect(older).toEqual([]);
    await writer.activity(ids, 2);
    await expectExactSnapshots();
  });

  it("folds anew a generation an older release's fold made, and stands by before a newer release's", async () => {
    const ids = await writer.open(10, { customers: 2 });
    await writer.activity(ids, 3);
    const first = startProjector();
    await first.started;
    await expectExactSnapshots();
    await first.projector.stop();
    const admin = testRedis.connect();
    const active = `${testRedis.keyPrefix}:active`;
    const older = (await admin.get(active))!;
    await admin.set(`${testRedis.keyPrefix}:${older}:version`, String(BALANCE_FOLD_VERSION - 1));

    const second = startProjector();
    await second.started;
    const anew = (await admin.get(active))!;
    expect(anew).not.toBe(older);
    await expectExactSnapshots();
    await second.projector.stop();

    // A rolling upgrade: a newer release folded the active generation; this one must not touch it.
    await admin.set(`${testRedis.keyPrefix}:${anew}:version`, String(BALANCE_FOLD_VERSION + 1));
    const checkpoint = await readModel.servedCheckpoint();
    await writer.activity(ids, 1);
    const refusals: string[] = [];
    const refused = (line: string) => {
      const { stage, err } = JSON.parse(line) as { stage?: string; err?: { code?: string } };
      if (stage === 'loading the checkpoint' && err?.code === 'projection_of_newer_release') refusals.push(line);
    };
    const watched = pino({ level: 'warn' }, { write: refused });
    const third = startProjector({ logger: watched });
    // It stands by, retrying, until stopped: start() never resolves meanwhile.
    third.started.catch(() => undefined);
    await waitFor(() => refusals.length >= 2, { description: 'the projector to stand by before the newer generation' });
    await expect(admin.get(active)).resolves.toBe(anew);
    await expect(readModel.servedCheckpoint()).resolves.toBe(checkpoint);
  });

  it('starts over when the event store is behind its checkpoint (a reset store, or another one)', async () => {
    const ids = await writer.open(10);
    await writer.activity(ids, 3);
    const first = startProjector();
    await first.started;
    await caughtUp();
    await first.projector.stop();

    const other = await createTestSchema({ prefix: 'projector_reset' });
    const resetStore = createPostgresEventStore({ pool: other.pool, logger, pollIntervalMs: 100 });
    try {
      const resetIds = await createLedgerWriter(resetStore, 5).open(3);
      const second = createBalanceProjector({ eventStore: resetStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, pollIntervalMs: 50 });
      running.push(second);
      await second.start();
      await checks.expectServedExactly(readModel, resetStore);
      await expect(readModel.getBalance(ids[0]!)).resolves.toBeUndefined();
      await expect(readModel.getBalance(resetIds[0]!)).resolves.toBeDefined();
    } finally {
      await resetStore.close();
      await other.drop();
    }
  });

  it('rides out Redis being down: retries, reports lag, skips nothing', async () => {
    const proxy = await startTcpProxy(6379);
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const ids = await writer.open(20);
    const { projector, redis, started } = startProjector({ redisPort: proxy.port, batchSize: 10, logger: watched });
    try {
      await started;
      await caughtUp();
      proxy.down();
      await writer.activity(ids, 5);
      await waitFor(() => warnings.includes('applying a batch failed; retrying'), { description: 'a failed write to be retried' });
      await waitFor(() => projector.lag().events > 0n, { description: 'lag to show the events not yet applied' });
      expect(projector.lag().seconds).toBeGreaterThan(0);
      proxy.resume();
      await expectExactSnapshots();
      await waitFor(() => projector.lag().events === 0n, { description: 'no lag' });
      expect(projector.lag().seconds).toBe(0);
    } finally {
      // Close the client while the proxy still forwards: one left reconnecting holds jest open.
      proxy.resume();
      await projector.stop();
      await redis.quit();
      await proxy.close();
    }
  });
});

/**
 * What the projector fails on and what it waits out. Each test has a schema of its own: a poisoned
 * event would stall every projector over the store.
 */
describe('balance projector, what it cannot fold or read', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let testRedis: TestRedis;
  const running: BalanceProjector[] = [];

  beforeEach(async () => {
    db = await createTestSchema({ prefix: 'projector_refusals' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    testRedis = createTestRedis('projector-refusals');
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((projector) => projector.stop()));
    await testRedis.close();
    await eventStore.close();
    await db.drop();
  });

  function startProjector(store: EventStore, projectorLogger: pino.Logger = logger) {
    const projector = createBalanceProjector({ eventStore: store, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger: projectorLogger, pollIntervalMs: 50 });
    running.push(projector);
    let failure: unknown;
    projector.onFailure((error) => (failure = error));
    return { projector, started: projector.start(), failure: () => failure };
  }

  it("keeps retrying an event it cannot fold (a newer release's) rather than fail: a release that folds it takes over", async () => {
    const [balanceId] = await createLedgerWriter(eventStore).open(1);
    const stream = balanceStreamId(balanceId!);
    const opened = await eventStore.readStream(stream);
    // Credits as a number: no release of this one decodes it.
    await eventStore.appendToStream(
      stream,
      [{ id: randomUUID(), type: 'CreditToppedUp', data: { credits: 5, source: 'manual', reason: null, balanceAfter: '5', occurredAt: new Date().toISOString() } }],
      { expectedRevision: opened[opened.length - 1]!.revision },
    );
    const retried: string[] = [];
    const watched = pino({ level: 'warn' }, {
      write: (line: string) => {
        const { msg, err } = JSON.parse(line) as { msg?: string; err?: { code?: string } };
        if (msg === 'applying a batch failed; retrying' && err?.code === 'unfoldable_ledger_event') retried.push(line);
      },
    });
    const { projector, started, failure } = startProjector(eventStore, watched);
    await started;

    await waitFor(() => retried.length >= 3 || failure() !== undefined, { description: 'the batch retried three times' });
    expect(failure()).toBeUndefined();
    expect(projector.state()).not.toBe('failed');
  });

  it('fails when its store cannot tell the head of its log as it loads its checkpoint, instead of retrying for ever', async () => {
    const error = new StreamRevisionMismatchError('creditBalance-recreated', 3n, 5n);
    const { projector, started, failure } = startProjector({ ...eventStore, headPosition: () => Promise.reject(error) });
    started.catch(() => undefined);

    await waitFor(() => failure() !== undefined, { description: 'the projector to fail', timeoutMs: 20_000 });
    expect(failure()).toBe(error);
    expect(projector.state()).toBe('failed');
  });

  it('fails, naming the error, when its store reports a read it can never make (not retriable), instead of retrying for ever', async () => {
    const error = new StreamRevisionMismatchError('creditBalance-recreated', 3n, 5n);
    // Every read of the subscription fails, reported and tried again, as an EventStoreDB store
    // whose journal entry cannot be applied does.
    const subscribeToAll = (options: SubscribeToAllOptions) => {
      const timer = setInterval(() => options.onError?.(error), 20);
      return { stop: async () => clearInterval(timer) };
    };
    const { projector, started, failure } = startProjector({ ...eventStore, subscribeToAll });
    await started;

    await waitFor(() => failure() !== undefined, { description: 'the projector to fail', timeoutMs: 20_000 });
    expect(failure()).toBe(error);
    expect(projector.state()).toBe('failed');
  });
});
