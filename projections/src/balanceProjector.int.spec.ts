import { randomUUID } from 'node:crypto';
import { createPostgresEventStore, EventStore } from '@tally/event-store';
import pino from 'pino';
import { createTestSchema, startTcpProxy, waitFor, type TestSchema } from '@tally/test-support';
import { createBalanceProjector, BalanceProjector } from './balanceProjector';
import { createBalanceReadModel, BalanceReadModel } from './balanceReadModel';
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

  it('restores every snapshot on its own after the keys are flushed, with no new event to trigger it', async () => {
    const ids = await writer.open(25, { customers: 5 });
    await writer.activity(ids, 4);
    const { started } = startProjector();
    await started;
    await expectExactSnapshots();
    const served = await Promise.all(ids.map((id) => readModel.getBalance(id)));

    // FLUSHALL as far as this prefix goes; the projector detects both the same way (its keys vanish).
    await testRedis.deleteAll();
    await waitFor(
      async () => {
        expect(await Promise.all(ids.map((id) => readModel.getBalance(id)))).toEqual(served);
        return true;
      },
      { description: 'the snapshots served before the flush to be back' },
    );
    await writer.activity(ids, 2);
    await expectExactSnapshots();
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
      await waitFor(() => warnings.includes('could not apply a batch; retrying'), { description: 'a failed write to be retried' });
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
