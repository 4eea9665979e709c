import { createPostgresEventStore, EventStore } from '@tally/event-store';
import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { createBalanceProjector, BalanceProjector } from './balanceProjector';
import { createBalanceReadModel, BalanceReadModel } from './balanceReadModel';
import { createLedgerWriter, LedgerWriter } from './testing/ledgerWriter';
import { createGenerationStore } from './generationStore';
import { caughtUp } from './testing/projectionChecks';
import { createTestRedis, TestRedis } from './testing/testRedis';
import { VerificationDisturbedError, verifyBalances } from './verifyBalances';

jest.setTimeout(60_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

describe('verifyBalances (PostgreSQL event store, Redis)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let writer: LedgerWriter;
  let testRedis: TestRedis;
  let redis: Redis;
  let readModel: BalanceReadModel;
  let projector: BalanceProjector;
  let ids: string[];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'verify' });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    writer = createLedgerWriter(eventStore, 11);
    ids = await writer.open(40, { customers: 10 });
    await writer.activity(ids, 8);
  });

  afterAll(async () => {
    await eventStore.close();
    await db.drop();
  });

  beforeEach(async () => {
    testRedis = createTestRedis('verify');
    redis = testRedis.connect();
    readModel = createBalanceReadModel({ redis, keyPrefix: testRedis.keyPrefix });
    projector = createBalanceProjector({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, pollIntervalMs: 50 });
    await projector.start();
    await caughtUp(readModel, eventStore);
  });

  afterEach(async () => {
    await projector.stop();
    await testRedis.close();
  });

  const verify = () => verifyBalances({ eventStore, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger, batchSize: 64 });
  const live = async () => {
    const generation = await redis.get(`${testRedis.keyPrefix}:active`);
    return { generation, balance: (id: string) => `${testRedis.keyPrefix}:${generation}:balance:${id}` };
  };

  it('finds nothing to report on a healthy projection, and leaves no keys of its own behind', async () => {
    const { generation } = await live();
    // The running projector marks freshAsOf on its first head poll after catching up; the keys
    // are compared once that write has happened, so only verify's own keys could differ.
    await waitFor(async () => (await redis.exists(`${testRedis.keyPrefix}:${generation}:freshAsOf`)) === 1, {
      description: 'the projector to mark its generation fresh',
    });
    const keysBefore = (await testRedis.keys()).sort();
    const result = await verify();
    expect(result).toEqual({ checkpoint: await readModel.servedCheckpoint(), balances: ids.length, differences: [] });
    expect((await testRedis.keys()).sort()).toEqual(keysBefore);
    await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(generation);
  });

  it('reports every deliberately corrupted, missing and extra snapshot, field by field', async () => {
    // Stop the projector so that nothing heals the damage before verify sees it.
    await projector.stop();
    const { generation, balance } = await live();
    const sorted = [...ids].sort();
    const [corrupted, renamed, missing, unindexed, misfiled] = sorted as [string, string, string, string, string];
    const original = await readModel.getBalance(corrupted);
    const renamedBefore = await readModel.getBalance(renamed);
    const unindexedBefore = await readModel.getBalance(unindexed);
    await redis.hset(balance(corrupted), 'balance', '999999', 'belowThreshold', original!.belowThreshold ? '0' : '1');
    await redis.hset(balance(renamed), 'name', 'tampered');
    await redis.del(balance(missing));
    await redis.srem(`${testRedis.keyPrefix}:${generation}:customer:${unindexedBefore!.customerId}`, unindexed);
    await redis.hset(balance('zz-extra'), { ...original, balanceId: 'zz-extra', belowThreshold: '0', lowBalanceThreshold: '' });
    // Listed under a customer it is not of (as well as its own): the API would list it there.
    const misfiledBefore = await readModel.getBalance(misfiled);
    await redis.sadd(`${testRedis.keyPrefix}:${generation}:customer:someone-else`, misfiled, 'zz-unknown');

    const result = await verify();
    expect(result.differences).toEqual([
      { balanceId: corrupted, field: 'balance', live: '999999', rebuilt: original!.balance },
      {
        balanceId: corrupted,
        field: 'belowThreshold',
        live: original!.belowThreshold ? '0' : '1',
        rebuilt: original!.belowThreshold ? '1' : '0',
      },
      { balanceId: renamed, field: 'name', live: 'tampered', rebuilt: renamedBefore!.name },
      { balanceId: missing, field: 'snapshot', live: null, rebuilt: 'present' },
      { balanceId: unindexed, field: 'customerIndex', live: null, rebuilt: unindexedBefore!.customerId },
      { balanceId: misfiled, field: 'customerIndex', live: 'someone-else', rebuilt: misfiledBefore!.customerId },
      { balanceId: 'zz-extra', field: 'snapshot', live: 'present', rebuilt: null },
      { balanceId: 'zz-unknown', field: 'customerIndex', live: 'someone-else', rebuilt: null },
    ]);
    // Verify never repairs or switches: the damage is still there.
    await expect(redis.hget(balance(corrupted), 'balance')).resolves.toBe('999999');
    await expect(redis.get(`${testRedis.keyPrefix}:active`)).resolves.toBe(generation);
  });

  it('reports no false difference for balances the live projection moved past the checkpoint it verifies', async () => {
    const moving = ids.slice(0, 15);
    let moved = false;
    // Verify has read the live checkpoint when it first reads the log (its rebuild reads the
    // payloads): move the live projection on right then, so its snapshots are past that
    // checkpoint when compared.
    const racing: EventStore = {
      ...eventStore,
      readAllPayloads: async (options) => {
        if (!moved) {
          moved = true;
          await writer.activity(moving, 3);
          await caughtUp(readModel, eventStore);
        }
        return eventStore.readAllPayloads(options);
      },
    };
    const result = await verifyBalances({ eventStore: racing, redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix, logger });
    // The race took place: a test that never moved the projection would prove nothing.
    expect(moved).toBe(true);
    expect(result).toMatchObject({ balances: ids.length, differences: [] });
    for (const id of moving) expect(BigInt((await readModel.getBalance(id))!.position)).toBeGreaterThan(result.checkpoint);
  });

  it('answers no differences but run it again when another replay or verify swept its aside while it compared', async () => {
    const verifying = testRedis.connect();
    const sweeper = createGenerationStore({ redis: testRedis.connect(), keyPrefix: testRedis.keyPrefix });
    const scan = verifying.scan.bind(verifying) as (...args: unknown[]) => Promise<[string, string[]]>;
    let swept: string[] = [];
    // Its first SCAN is the comparison's: the aside is built by then. A sweeper takes it for
    // abandoned right then (its builder paused past the bound).
    (verifying as unknown as { scan: (...args: unknown[]) => Promise<[string, string[]]> }).scan = async (...args) => {
      if (swept.length === 0) {
        const [aside] = await redis.zrange(sweeper.keys.building, 0, -1);
        await redis.zadd(sweeper.keys.building, 0, aside!);
        swept = await sweeper.deleteAbandonedAsides(60_000);
      }
      return scan(...args);
    };
    const verified = verifyBalances({ eventStore, redis: verifying, keyPrefix: testRedis.keyPrefix, logger, batchSize: 64 });
    await expect(verified).rejects.toThrow(VerificationDisturbedError);
    await expect(verified).rejects.toThrow('run it again');
    expect(swept).toHaveLength(1);
  });
});
