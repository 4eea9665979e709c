import pino from 'pino';
import { createTestSchema, createUnreachablePool, stackConfig, startTcpProxyFor, waitFor, type TestSchema } from '@tally/test-support';
import { createPool } from './createPool';
import { leaseHolders, leaseHolderSessions, tryAcquireAdvisoryLease } from './advisoryLease';

describe('advisory lease on PostgreSQL', () => {
  let db: TestSchema;

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'advisory_lease' });
  });

  afterAll(async () => {
    await db.drop();
  });

  const holders = (...names: string[]): Promise<number[]> => leaseHolders(db.pool, names);

  it('is held by one session at a time, and free for the next once released', async () => {
    const first = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-a' });
    expect(first).toBeDefined();
    expect(await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-a' })).toBeUndefined();
    // Another name is another lease.
    const other = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-b' });
    expect(other).toBeDefined();
    expect(await holders('relay-a', 'relay-b')).toHaveLength(2);
    // By name, with the application name its pool connected with; a name nobody holds is not there.
    const sessions = await leaseHolderSessions(db.pool, ['relay-a', 'relay-b', 'relay-c']);
    expect(sessions.map(({ name, applicationName }) => [name, applicationName]).sort()).toEqual([
      ['relay-a', 'test-advisory_lease'],
      ['relay-b', 'test-advisory_lease'],
    ]);
    expect(sessions.map(({ pid }) => pid).sort()).toEqual((await holders('relay-a', 'relay-b')).sort());

    await first!.release();
    const second = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-a' });
    expect(second).toBeDefined();
    await second!.release();
    await other!.release();
    expect(await holders('relay-a', 'relay-b')).toEqual([]);
    // Released connections went back to the pool; none is left checked out.
    expect(db.pool.totalCount - db.pool.idleCount).toBe(0);
  });

  it('is keyed by schema, so the same name in another schema is another lease', async () => {
    const elsewhere = await createTestSchema({ prefix: 'advisory_lease_other' });
    try {
      const here = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-a' });
      const there = await tryAcquireAdvisoryLease({ pool: elsewhere.pool, name: 'relay-a' });
      expect(here).toBeDefined();
      expect(there).toBeDefined();
      await here!.release();
      await there!.release();
    } finally {
      await elsewhere.drop();
    }
  });

  it('is held one at a time even where the search path names no schema yet (before the first migration)', async () => {
    const pool = createPool({ connectionString: db.connectionString, schema: `${db.schema}_not_created`, applicationName: 'lease-no-schema', logger: pino({ level: 'silent' }) });
    try {
      const first = await tryAcquireAdvisoryLease({ pool, name: 'relay-a' });
      expect(first).toBeDefined();
      expect(await tryAcquireAdvisoryLease({ pool, name: 'relay-a' })).toBeUndefined();
      await first!.release();
    } finally {
      await pool.end();
    }
  });

  it('reports the loss when its session is terminated, and the lock is free for another session', async () => {
    const lease = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-terminated', heartbeatMs: 100 });
    expect(lease).toBeDefined();
    const [pid] = await holders('relay-terminated');
    expect(pid).toBeDefined();
    let lost: Error | undefined;
    void lease!.lost.then((error) => {
      lost = error;
    });

    await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(() => lost !== undefined, { description: 'the lease reported lost', timeoutMs: 10_000 });
    // The server releases the lock as the terminated backend exits, which may finish a moment
    // after the client saw its connection close: a standby retries, and so does this test.
    let next: Awaited<ReturnType<typeof tryAcquireAdvisoryLease>>;
    await waitFor(async () => (next = await tryAcquireAdvisoryLease({ pool: db.pool, name: 'relay-terminated' })) !== undefined, {
      description: 'the lease taken by another session',
      timeoutMs: 10_000,
    });
    await next!.release();
    // Releasing a lost lease changes nothing and does not throw.
    await expect(lease!.release()).resolves.toBeUndefined();
  });

  it("holds its own connection, not one of the pool's: a pool of one still answers while several leases are held", async () => {
    const pool = createPool({ connectionString: stackConfig.testDatabaseUrl, schema: db.schema, applicationName: 'lease-small-pool', max: 1, connectionTimeoutMillis: 2_000, logger: pino({ level: 'silent' }) });
    try {
      const relay = await tryAcquireAdvisoryLease({ pool, name: 'relay-small-pool' });
      const projector = await tryAcquireAdvisoryLease({ pool, name: 'projector-small-pool' });
      expect([relay, projector]).toEqual([expect.anything(), expect.anything()]);
      // The work the leases are held for goes through the pool: it must not wait for a connection.
      expect((await pool.query<{ answer: number }>('SELECT 1 AS answer')).rows).toEqual([{ answer: 1 }]);
      expect(await leaseHolderSessions(pool, ['relay-small-pool', 'projector-small-pool'])).toEqual([
        expect.objectContaining({ applicationName: 'lease-small-pool' }),
        expect.objectContaining({ applicationName: 'lease-small-pool' }),
      ]);
      await relay!.release();
      await projector!.release();
      expect(await holders('relay-small-pool', 'projector-small-pool')).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it('throws when PostgreSQL cannot be reached', async () => {
    const unreachable = createUnreachablePool('advisory-lease-unreachable');
    try {
      await expect(tryAcquireAdvisoryLease({ pool: unreachable, name: 'relay-a' })).rejects.toThrow(/ECONNREFUSED|connect/);
    } finally {
      await unreachable.end();
    }
  });

  it('reports the loss when a heartbeat gets no answer within its timeout (a partition, not a failure)', async () => {
    const { proxy, url } = await startTcpProxyFor(stackConfig.testDatabaseUrl);
    const pool = createPool({ connectionString: url, schema: db.schema, applicationName: 'lease-partition', logger: pino({ level: 'silent' }) });
    try {
      const lease = await tryAcquireAdvisoryLease({ pool, name: 'relay-partitioned', heartbeatMs: 100, timeoutMs: 500 });
      expect(lease).toBeDefined();
      let lost: Error | undefined;
      void lease!.lost.then((error) => {
        lost = error;
      });
      // Nothing fails and nothing answers: only the heartbeat's timeout can tell.
      proxy.stall();
      await waitFor(() => lost !== undefined, { description: 'the lease reported lost', timeoutMs: 10_000 });
      expect(lost!.message).toMatch(/timeout/i);
      // The lost lease gave its connection up: a release afterwards neither waits nor throws.
      await expect(lease!.release()).resolves.toBeUndefined();
    } finally {
      proxy.resume();
      await pool.end();
      await proxy.close();
    }
  });
});
