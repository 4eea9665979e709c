import { createPostgresCatalogStore, type CatalogStore } from '@tally/catalog';
import { balanceStreamId, MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createMetricsRegistry, type MetricsRegistry } from '@tally/metrics';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { createTestSchema, uniqueName, waitFor, type TestSchema } from '@tally/test-support';
import pino from 'pino';
import { createPostgresHoldExpiryIndex } from './holdExpiryIndex';
import { createHoldExpiryWorker, type HoldExpiryWorker } from './holdExpiryWorker';
import { createLedgerService, type LedgerService } from './ledgerService';
import { createPostgresBalanceRegistry } from './postgresBalanceRegistry';

jest.setTimeout(120_000);

const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;

describe('hold expiry worker (PostgreSQL)', () => {
  let db: TestSchema;
  let eventStore: EventStore;
  let catalog: CatalogStore;
  let ledger: LedgerService;
  const running: HoldExpiryWorker[] = [];

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'hold_expiry', max: 16 });
    eventStore = createPostgresEventStore({ pool: db.pool, logger, pollIntervalMs: 100 });
    catalog = createPostgresCatalogStore({ pool: db.pool, logger });
    ledger = createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger });
    await catalog.createProduct({ id: 'p', name: 'p', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((worker) => worker.stop()));
  });

  afterAll(async () => {
    await eventStore?.close();
    await db?.drop();
  });

  function worker(
    name: string,
    options: { batchSize?: number; ledger?: Pick<LedgerService, 'expireHold'>; metrics?: MetricsRegistry } = {},
  ): HoldExpiryWorker {
    const created = createHoldExpiryWorker({
      eventStore,
      checkpoints: createPostgresCheckpointStore(db.pool),
      index: createPostgresHoldExpiryIndex(db.pool),
      // Each process its own ledger service (its own cache), as separate deployments would have.
      ledger: options.ledger ?? createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: db.pool }), logger }),
      logger,
      name,
      lease: { pool: db.pool, standbyPollMs: 100, heartbeatMs: 200 },
      pollIntervalMs: 50,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    });
    running.push(created);
    return created;
  }

  let customer = 0;
  async function openBalance(): Promise<string> {
    customer += 1;
    return (await ledger.openBalance({ customerId: `c-${customer}`, productId: 'p', startingBalance: credits(10) })).balance.balanceId;
  }

  const typesOf = async (balanceId: string) => (await eventStore.readStream(balanceStreamId(balanceId))).map((event) => event.type);
  const count = (types: string[], type: string) => types.filter((candidate) => candidate === type).length;

  it('frees each hold not captured or released by its expiry exactly once, with two processes sharing the lease', async () => {
    const name = uniqueName('expiry');
    const [a, b] = [worker(name), worker(name)];
    await Promise.all([a.start(), b.start()]);
    expect([a.isLeading(), b.isLeading()].filter(Boolean)).toHaveLength(1);

    const balanceId = await openBalance();
    const place = (key: string, inSeconds: number) =>
      ledger.placeHold(balanceId, { credits: credits(1), expires: { inSeconds }, reference: null }, { idempotencyKey: key });
    const expiring = await Promise.all(['x1', 'x2', 'x3'].map((key) => place(key, 0.5)));
    // Captured and released before their expiry (well before: the machine may be slow); the index must drop them too.
    const captured = await place('captured', 3600);
    const released = await place('released', 3600);
    const lasting = await place('lasting', 3600);
    await ledger.captureHold(captured.holdId, { reason: null });
    await ledger.releaseHold(released.holdId, { reason: null });

    await waitFor(async () => count(await typesOf(balanceId), 'HoldExpired') === expiring.length, { description: 'the three holds to expire' });
    const { balance } = await ledger.getBalance(balanceId);
    expect(Object.keys(balance.holds)).toEqual([lasting.holdId]);
    expect(balance).toMatchObject({ balance: credits(9), held: credits(1) });
    // The index follows: only the lasting hold is left in it.
    await waitFor(async () => (await db.pool.query('SELECT hold_id FROM hold_expiries')).rows.length === 1, { description: 'the index to drop the freed holds' });
    expect((await db.pool.query('SELECT hold_id FROM hold_expiries')).rows).toEqual([{ hold_id: lasting.holdId }]);

    // The leader stops: the other takes over from the shared checkpoint and expires what comes due.
    const leader = a.isLeading() ? a : b;
    const standby = leader === a ? b : a;
    await leader.stop();
    await waitFor(() => standby.isLeading(), { description: 'the standby to take the lease' });
    const later = await place('later', 0.5);
    await waitFor(async () => Object.keys((await ledger.getBalance(balanceId)).balance.holds).length === 1, {
      description: 'the hold placed after the takeover to expire',
    });
    const types = await typesOf(balanceId);
    expect(count(types, 'HoldExpired')).toBe(4);
    expect((await ledger.getBalance(balanceId)).balance.holds).not.toHaveProperty(later.holdId);
  });

  it('catches up after a restart: holds placed while no worker ran expire once one starts', async () => {
    const name = uniqueName('restart');
    const first = worker(name);
    await first.start();
    await first.stop();
    const balanceId = await openBalance();
    await ledger.placeHold(balanceId, { credits: credits(1), expires: { inSeconds: 0.2 }, reference: null }, { idempotencyKey: 'while-down' });
    const second = worker(name);
    await second.start();
    await waitFor(async () => count(await typesOf(balanceId), 'HoldExpired') === 1, { description: 'the hold placed while down to expire' });
  });

  it('drops stale rows of holds freed already, so the holds due behind a full batch of them still expire', async () => {
    const name = uniqueName('stale');
    const balanceId = await openBalance();
    const place = (key: string, inSeconds: number) =>
      ledger.placeHold(balanceId, { credits: credits(1), expires: { inSeconds }, reference: null }, { idempotencyKey: key });
    await worker(name, { batchSize: 2 }).start();
    const freed = await Promise.all(['s1', 's2', 's3', 's4'].map((key) => place(key, 3600)));
    for (const { holdId } of freed) await ledger.captureHold(holdId, { reason: null });
    const head = await eventStore.headPosition();
    const checkpoints = createPostgresCheckpointStore(db.pool);
    await waitFor(async () => (await checkpoints.load(name)) >= head, { description: 'the index to take in the captures' });
    // An index behind the ledger (a restore, a lease taken over mid-batch): rows of holds captured
    // already, due long ago, whose freeing events the index processor has passed.
    await db.pool.query(
      `INSERT INTO hold_expiries (hold_id, balance_id, expires_at) SELECT unnest($1::text[]), $2, now() - interval '1 hour'`,
      [freed.map(({ holdId }) => holdId), balanceId],
    );
    const due = await place('due', 0.5);
    await waitFor(async () => count(await typesOf(balanceId), 'HoldExpired') === 1, { description: 'the hold due behind the stale rows to expire' });
    expect((await ledger.getBalance(balanceId)).balance.holds).not.toHaveProperty(due.holdId);
    await waitFor(async () => (await db.pool.query('SELECT 1 FROM hold_expiries WHERE balance_id = $1', [balanceId])).rows.length === 0, {
      description: 'the stale rows dropped',
    });
  });

  it('reports how long the oldest hold past its expiry has waited while the sweep fails to expire it, and 0 once it is expired', async () => {
    const name = uniqueName('overdue');
    const balanceId = await openBalance();
    // The sweep's expiries fail (a bug, a refusal loop) until told otherwise; the index stays current.
    let failing = true;
    const tried = new Set<string>();
    const failingLedger: Pick<LedgerService, 'expireHold'> = {
      expireHold: async (holdId) => {
        tried.add(holdId);
        if (failing) throw new Error('expiry fails');
        return ledger.expireHold(holdId);
      },
    };
    const metrics = createMetricsRegistry();
    const expiry = worker(name, { ledger: failingLedger, metrics });
    await expiry.start();
    await waitFor(() => expiry.isLeading(), { description: 'the worker to lead' });
    const overdue = async () => {
      const found = /^tally_hold_expiry_overdue_seconds (\S+)$/m.exec(await metrics.render());
      if (found === null) throw new Error('tally_hold_expiry_overdue_seconds is not exported');
      return Number(found[1]);
    };

    const hold = await ledger.placeHold(balanceId, { credits: credits(1), expires: { inSeconds: 0.2 }, reference: null }, { idempotencyKey: 'overdue' });
    await waitFor(() => tried.has(hold.holdId), { description: 'the sweep to try the hold past its expiry' });
    const { rows } = await db.pool.query<{ expires_at: Date }>('SELECT expires_at FROM hold_expiries WHERE hold_id = $1', [hold.holdId]);
    const expiresAt = rows[0]!.expires_at.getTime();

    // The gauge reads the index when scraped: the hold's age past expiry between the clock before and after.
    const before = Date.now();
    const first = await overdue();
    const after = Date.now();
    expect(first).toBeGreaterThanOrEqual((before - expiresAt) / 1000);
    expect(first).toBeLessThanOrEqual((after - expiresAt) / 1000);
    // It keeps rising while the sweep keeps failing.
    await waitFor(async () => (await overdue()) > first, { description: 'the overdue age to rise' });
    expect(count(await typesOf(balanceId), 'HoldExpired')).toBe(0);

    failing = false;
    await waitFor(async () => count(await typesOf(balanceId), 'HoldExpired') === 1, { description: 'the hold to expire once the sweep works' });
    await waitFor(async () => (await overdue()) === 0, { description: 'the gauge back to 0' });
  });
});
