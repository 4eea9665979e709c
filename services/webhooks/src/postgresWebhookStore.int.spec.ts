import { createTestSchema, waitFor, type TestSchema } from '@tally/test-support';
import { createPostgresWebhookStore } from './postgresWebhookStore';
import { outcomeOfFailure } from './webhookDispatcher';
import type { NewWebhookDelivery, WebhookStore } from './webhookStore';

describe('PostgreSQL webhook store', () => {
  let db: TestSchema;
  let store: WebhookStore;
  const t0 = new Date('2026-11-30T12:00:00Z');
  const later = (ms: number) => new Date(t0.getTime() + ms);
  // The default: 3 days, a minute between attempts.
  const retryPolicy = { retryForMs: 259_200_000, delayAfter: () => 60_000 };

  beforeAll(async () => {
    db = await createTestSchema({ prefix: 'webhook_store' });
    store = createPostgresWebhookStore(db.pool);
  });

  afterAll(async () => {
    await db.drop();
  });

  async function endpoint(id: string) {
    return store.createEndpoint({ id, url: `http://127.0.0.1/${id}`, description: null, events: ['credit_balance.low'], secret: 'whsec_a', afterPosition: 0n });
  }

  const delivery = (endpointId: string, balanceId: string, position: bigint): NewWebhookDelivery => ({
    id: `${endpointId}:${position}`,
    endpointId,
    ledgerEventId: `event-${position}`,
    balanceId,
    position,
    eventType: 'credit_balance.low',
    body: `{"position":"${position}"}`,
  });

  it('records a delivery once however often it is recorded', async () => {
    await endpoint('ep-once');
    await store.recordDeliveries([delivery('ep-once', 'b1', 1n)], t0);
    await store.recordAttempt('ep-once:1', { attempt: 1, startedAt: t0, durationMs: 5, statusCode: 200, error: null, responseBody: 'ok' }, { status: 'succeeded' });
    await store.recordDeliveries([delivery('ep-once', 'b1', 1n)], t0);
    const [listed] = await store.listDeliveries('ep-once', { limit: 10 });
    expect(listed).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(listed?.attemptLog).toEqual([{ attempt: 1, startedAt: t0, durationMs: 5, statusCode: 200, error: null, responseBody: 'ok' }]);
  });

  it("stores a receiver's answer and an error holding a NUL, which PostgreSQL text refuses (22021), with U+FFFD in its place", async () => {
    await endpoint('ep-nul');
    await store.recordDeliveries([delivery('ep-nul', 'b1', 2n)], t0);
    const attempt = { attempt: 1, startedAt: t0, durationMs: 5, statusCode: 200, error: 'a \u0000 in the error', responseBody: 'ok\u0000' };
    await store.recordAttempt('ep-nul:2', attempt, { status: 'succeeded' });
    const [listed] = await store.listDeliveries('ep-nul', { limit: 10 });
    expect(listed).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(listed?.attemptLog).toEqual([{ ...attempt, error: 'a \ufffd in the error', responseBody: 'ok\ufffd' }]);
  });

  // Not the store's doing: pg writes parameters as UTF-8 with Buffer, which turns a lone surrogate
  // into U+FFFD before PostgreSQL sees it. Asserted so that a driver that stops doing so shows here.
  it("stores a lone surrogate in a receiver's answer as U+FFFD (node-postgres' UTF-8 encoding)", async () => {
    await endpoint('ep-surrogate');
    await store.recordDeliveries([delivery('ep-surrogate', 'b1', 3n)], t0);
    const attempt = { attempt: 1, startedAt: t0, durationMs: 5, statusCode: 200, error: 'lone \ud800', responseBody: 'a\ud800b\udc00' };
    await store.recordAttempt('ep-surrogate:3', attempt, { status: 'succeeded' });
    const [listed] = await store.listDeliveries('ep-surrogate', { limit: 10 });
    expect(listed?.attemptLog).toEqual([{ ...attempt, error: 'lone \ufffd', responseBody: 'a\ufffdb\ufffd' }]);
  });

  it("holds a balance's later deliveries behind one waiting for its retry, and no other balance's", async () => {
    await endpoint('ep-order');
    await store.recordDeliveries([delivery('ep-order', 'b1', 10n), delivery('ep-order', 'b1', 11n), delivery('ep-order', 'b2', 12n)], t0);
    const first = await store.dueDeliveries(later(1_000), 10);
    expect(first.filter((due) => due.endpointId === 'ep-order').map((due) => due.id).sort()).toEqual(['ep-order:10', 'ep-order:12']);
    await store.recordAttempt('ep-order:10', { attempt: 1, startedAt: later(1_000), durationMs: 3, statusCode: 500, error: null, responseBody: null }, { status: 'pending', nextAttemptAt: later(60_000) });
    await store.recordAttempt('ep-order:12', { attempt: 1, startedAt: later(1_000), durationMs: 3, statusCode: 204, error: null, responseBody: null }, { status: 'succeeded' });
    expect((await store.dueDeliveries(later(2_000), 10)).filter((due) => due.endpointId === 'ep-order')).toEqual([]);
    expect((await store.dueDeliveries(later(59_999), 10)).filter((due) => due.endpointId === 'ep-order')).toEqual([]);
    const retried = await store.dueDeliveries(later(60_000), 10);
    expect(retried.filter((due) => due.endpointId === 'ep-order')).toMatchObject([{ id: 'ep-order:10', attempts: 1, firstAttemptAt: later(1_000) }]);
    await store.recordAttempt('ep-order:10', { attempt: 2, startedAt: later(60_000), durationMs: 3, statusCode: 200, error: null, responseBody: null }, { status: 'succeeded' });
    expect((await store.dueDeliveries(later(60_001), 10)).filter((due) => due.endpointId === 'ep-order').map((due) => due.id)).toEqual(['ep-order:11']);
  });

  it('gives every endpoint a turn: one with many deliveries due does not fill the batch ahead of another', async () => {
    // A day before the other tests' deliveries: only these are due at the instant asked.
    const dayBefore = new Date(t0.getTime() - 86_400_000);
    await Promise.all([endpoint('ep-busy'), endpoint('ep-quiet')]);
    for (const [index, balanceId] of ['b1', 'b2', 'b3', 'b4', 'b5'].entries()) {
      await store.recordDeliveries([delivery('ep-busy', balanceId, 100n + BigInt(index))], new Date(dayBefore.getTime() + index));
    }
    await store.recordDeliveries([delivery('ep-quiet', 'b1', 200n)], new Date(dayBefore.getTime() + 10));
    const due = await store.dueDeliveries(new Date(dayBefore.getTime() + 1_000), 2);
    expect(due.map((delivery) => delivery.id)).toEqual(['ep-busy:100', 'ep-quiet:200']);
  });

  it("leaves out the deliveries it is told to, so they take none of the limit, and keeps their balance's later ones behind them", async () => {
    // Three days before the other tests' deliveries: only these are due at the instant asked.
    const before = (ms: number) => new Date(t0.getTime() - 3 * 86_400_000 + ms);
    await Promise.all([endpoint('ep-held'), endpoint('ep-free')]);
    await store.recordDeliveries([delivery('ep-held', 'b1', 300n), delivery('ep-held', 'b1', 301n)], before(0));
    await store.recordDeliveries([delivery('ep-held', 'b2', 302n)], before(1));
    await store.recordDeliveries([delivery('ep-free', 'b1', 310n)], before(2));
    const ids = (due: readonly { id: string }[]) => due.map((delivery) => delivery.id);
    expect(ids(await store.dueDeliveries(before(1_000), 1))).toEqual(['ep-held:300']);
    expect(ids(await store.dueDeliveries(before(1_000), 10, []))).toEqual(['ep-held:300', 'ep-free:310', 'ep-held:302']);
    // ep-held:301 stays behind ep-held:300, which is still pending: left out is not gone.
    expect(ids(await store.dueDeliveries(before(1_000), 1, ['ep-held:300']))).toEqual(['ep-held:302']);
    expect(ids(await store.dueDeliveries(before(1_000), 10, ['ep-held:300', 'ep-held:302']))).toEqual(['ep-free:310']);
  });

  it('keeps the outcome of a later attempt over a late one of the same number (a deposed sender finishing)', async () => {
    await endpoint('ep-late');
    await store.recordDeliveries([delivery('ep-late', 'b1', 30n)], t0);
    const attempt = { attempt: 1, startedAt: later(1_000), durationMs: 3, statusCode: 200, error: null, responseBody: null };
    await store.recordAttempt('ep-late:30', attempt, { status: 'succeeded' });
    // The same attempt number made by a sender that lost its lease, timing out after the other's success.
    await store.recordAttempt('ep-late:30', { ...attempt, statusCode: null, error: 'response timeout' }, { status: 'pending', nextAttemptAt: later(5_000) });
    await store.recordAttempt('ep-late:30', { ...attempt, statusCode: null, error: 'response timeout' }, { status: 'failed', disableReason: 'gave up' });
    const [listed] = await store.listDeliveries('ep-late', { limit: 10 });
    expect(listed).toMatchObject({ status: 'succeeded', attempts: 1, attemptLog: [{ attempt: 1, statusCode: 200 }] });
    expect(await store.getEndpoint('ep-late')).toMatchObject({ disabled: null });
  });

  it('deletes delivered webhooks older than the cut-off with their attempts, oldest first, a bounded batch at a time', async () => {
    await endpoint('ep-old');
    await store.recordDeliveries([delivery('ep-old', 'b1', 40n), delivery('ep-old', 'b2', 41n), delivery('ep-old', 'b3', 42n), delivery('ep-old', 'b4', 43n)], t0);
    // Delivered two days before the other tests' deliveries: only these are past the cut-offs asked.
    const early = (ms: number) => new Date(t0.getTime() - 2 * 86_400_000 + ms);
    const attempt = (ms: number, statusCode: number) => ({ attempt: 1, startedAt: early(ms), durationMs: 0, statusCode, error: null, responseBody: null });
    await store.recordAttempt('ep-old:40', attempt(1_000, 200), { status: 'succeeded' });
    await store.recordAttempt('ep-old:41', attempt(2_000, 200), { status: 'succeeded' });
    await store.recordAttempt('ep-old:42', attempt(3_000, 500), { status: 'failed', disableReason: 'gave up' });
    // ep-old:43 stays pending. Delivered before early(2_500): 40 and 41; one at a time, the older first.
    expect(await store.deleteDelivered(early(2_500), 1)).toBe(1);
    expect((await store.listDeliveries('ep-old', { limit: 10 })).map((listed) => listed.id)).toEqual(['ep-old:43', 'ep-old:42', 'ep-old:41']);
    expect(await store.deleteDelivered(early(2_500), 10)).toBe(1);
    expect(await store.deleteDelivered(early(60_000), 10)).toBe(0);
    expect((await store.listDeliveries('ep-old', { limit: 10 })).map((listed) => [listed.id, listed.status])).toEqual([
      ['ep-old:43', 'pending'],
      ['ep-old:42', 'failed'],
    ]);
    const { rows } = await db.pool.query("SELECT count(*)::int AS attempts FROM webhook_delivery_attempts WHERE delivery_id IN ('ep-old:40', 'ep-old:41')");
    expect(rows[0].attempts).toBe(0);
  });

  it('keeps a delivered webhook that a retry by hand makes pending while the deletion waits for its row', async () => {
    await endpoint('ep-kept');
    await store.recordDeliveries([delivery('ep-kept', 'b1', 60n)], t0);
    // Delivered ten days before the others: only it is past the cut-off asked here.
    const tenDaysBefore = new Date(t0.getTime() - 10 * 86_400_000);
    await store.recordAttempt('ep-kept:60', { attempt: 1, startedAt: tenDaysBefore, durationMs: 0, statusCode: 200, error: null, responseBody: null }, { status: 'succeeded' });

    // The retry's update, held uncommitted, so that the deletion (which read the row as
    // delivered) waits for its lock and sees the row only once it is pending.
    const retrying = await db.pool.connect();
    let deleting: Promise<number> | undefined;
    try {
      await retrying.query('BEGIN');
      await retrying.query("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, first_attempt_at = NULL WHERE id = $1", ['ep-kept:60', t0]);
      const { rows } = await retrying.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      deleting = store.deleteDelivered(new Date(tenDaysBefore.getTime() + 86_400_000), 10);
      await waitFor(
        async () => {
          const waiting = await db.pool.query<{ n: number }>('SELECT count(*)::integer AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [rows[0]!.pid]);
          return (waiting.rows[0]?.n ?? 0) > 0;
        },
        { description: 'the deletion waiting for the retried row', intervalMs: 20 },
      );
      await retrying.query('COMMIT');
    } finally {
      retrying.release();
    }
    expect(await deleting).toBe(0);
    expect(await store.listDeliveries('ep-kept', { limit: 10 })).toMatchObject([{ id: 'ep-kept:60', status: 'pending' }]);
  });

  it('disables the endpoint with the reason when a delivery is given up, and sends it nothing more until re-enabled', async () => {
    await endpoint('ep-gone');
    // A key's change first, so that the deliverer's disabling has a key to clear: Tally's own change names none.
    const ops = { keyId: '0123456789ab', keyName: 'ops' };
    expect(await store.updateEndpoint('ep-gone', { description: 'alerts' }, ops)).toMatchObject({ createdBy: null, updatedBy: ops });
    await store.recordDeliveries([delivery('ep-gone', 'b1', 20n), delivery('ep-gone', 'b2', 21n)], t0);
    await store.recordAttempt('ep-gone:20', { attempt: 9, startedAt: later(5_000), durationMs: 3, statusCode: null, error: 'ECONNREFUSED', responseBody: null }, { status: 'failed', disableReason: 'gave up' });
    expect(await store.getEndpoint('ep-gone')).toMatchObject({ disabled: { reason: 'gave up' }, updatedBy: null });
    // Still recorded for (its deliveries wait), not sent to.
    expect((await store.allEndpoints()).map((e) => e.id)).toContain('ep-gone');
    expect((await store.dueDeliveries(later(10_000), 10)).filter((due) => due.endpointId === 'ep-gone')).toEqual([]);
    await store.updateEndpoint('ep-gone', { enabled: true });
    // The given-up one is pending again, due at once, its retry period to start anew.
    expect((await store.dueDeliveries(later(10_000), 10)).filter((due) => due.endpointId === 'ep-gone')).toMatchObject([
      { id: 'ep-gone:20', attempts: 9, firstAttemptAt: null },
      { id: 'ep-gone:21' },
    ]);
    const retried = await store.retryDelivery('ep-gone', 'ep-gone:20', later(11_000));
    expect(retried).toMatchObject({ status: 'pending', firstAttemptAt: null, nextAttemptAt: later(11_000) });
    expect(await store.retryDelivery('ep-order', 'ep-gone:20', later(11_000))).toBeUndefined();
  });

  it('leaves failed a given-up delivery whose balance has a later one delivered since, when it enables the endpoint', async () => {
    await endpoint('ep-stale');
    await store.recordDeliveries([delivery('ep-stale', 'b1', 70n), delivery('ep-stale', 'b1', 71n), delivery('ep-stale', 'b1', 72n), delivery('ep-stale', 'b2', 73n)], t0);
    const gaveUp = { attempt: 1, startedAt: later(1_000), durationMs: 3, statusCode: 500, error: null, responseBody: null };
    const delivered = { ...gaveUp, statusCode: 200 };
    // 70 given up, then 71 delivered after it (sent again by hand): 70 is stale. 72 given up with
    // nothing of b1 delivered after it, and 73 of another balance: both still owed.
    await store.recordAttempt('ep-stale:70', gaveUp, { status: 'failed', disableReason: 'gave up' });
    await store.recordAttempt('ep-stale:71', delivered, { status: 'succeeded' });
    await store.recordAttempt('ep-stale:72', gaveUp, { status: 'failed', disableReason: 'gave up' });
    await store.recordAttempt('ep-stale:73', gaveUp, { status: 'failed', disableReason: 'gave up' });
    await store.updateEndpoint('ep-stale', { enabled: true });
    const statuses = Object.fromEntries((await store.listDeliveries('ep-stale', { limit: 10 })).map((d) => [d.id, d.status]));
    expect(statuses).toEqual({ 'ep-stale:70': 'failed', 'ep-stale:71': 'succeeded', 'ep-stale:72': 'pending', 'ep-stale:73': 'pending' });
  });

  it('counts the retry period of a re-enabled endpoint\'s pending deliveries from their next attempt, not from before the pause', async () => {
    await endpoint('ep-resumed');
    await store.recordDeliveries([delivery('ep-resumed', 'b1', 40n)], t0);
    await store.recordAttempt('ep-resumed:40', { attempt: 1, startedAt: later(1_000), durationMs: 3, statusCode: 500, error: null, responseBody: null }, { status: 'pending', nextAttemptAt: later(5_000) });
    // A change that is no re-enabling keeps the period running.
    await store.updateEndpoint('ep-resumed', { description: 'paused soon' });
    await store.updateEndpoint('ep-resumed', { enabled: true });
    const running = (await store.dueDeliveries(later(6_000), 10)).filter((due) => due.endpointId === 'ep-resumed');
    expect(running).toMatchObject([{ id: 'ep-resumed:40', firstAttemptAt: later(1_000) }]);

    // Paused for four days (more than the 3-day retry period), then enabled again.
    await store.updateEndpoint('ep-resumed', { enabled: false });
    await store.updateEndpoint('ep-resumed', { enabled: true });
    const fourDays = 4 * 86_400_000;
    const resumed = (await store.dueDeliveries(later(fourDays), 10)).filter((due) => due.endpointId === 'ep-resumed');
    expect(resumed).toMatchObject([{ id: 'ep-resumed:40', attempts: 1, firstAttemptAt: null }]);
    // So the next failure is retried, not given up at once (which would disable the endpoint again).
    expect(outcomeOfFailure(resumed[0]!, 2, later(fourDays), retryPolicy, 'HTTP 500')).toMatchObject({ status: 'pending' });
    await store.recordAttempt('ep-resumed:40', { attempt: 2, startedAt: later(fourDays), durationMs: 3, statusCode: 500, error: null, responseBody: null }, { status: 'pending', nextAttemptAt: later(fourDays + 10_000) });
    const [listed] = await store.listDeliveries('ep-resumed', { limit: 10 });
    expect(listed).toMatchObject({ status: 'pending', firstAttemptAt: later(fourDays) });
  });

  it('counts the attempts of the retry period a manual retry starts anew, keeping the total', async () => {
    await endpoint('ep-manual');
    await store.recordDeliveries([delivery('ep-manual', 'b1', 50n)], t0);
    const failed = (attempt: number, ms: number) => ({ attempt, startedAt: later(ms), durationMs: 3, statusCode: 500, error: null, responseBody: null });
    await store.recordAttempt('ep-manual:50', failed(1, 1_000), { status: 'pending', nextAttemptAt: later(2_000) });
    await store.recordAttempt('ep-manual:50', failed(2, 2_000), { status: 'failed', disableReason: 'gave up' });
    await store.updateEndpoint('ep-manual', { enabled: true });
    await store.retryDelivery('ep-manual', 'ep-manual:50', later(10_000));
    const due = () => store.dueDeliveries(later(20_000), 100).then((all) => all.filter((d) => d.endpointId === 'ep-manual'));
    expect(await due()).toMatchObject([{ id: 'ep-manual:50', attempts: 2, firstAttemptAt: null, attemptsThisPeriod: 0 }]);
    await store.recordAttempt('ep-manual:50', failed(3, 10_000), { status: 'pending', nextAttemptAt: later(11_000) });
    expect(await due()).toMatchObject([{ id: 'ep-manual:50', attempts: 3, firstAttemptAt: later(10_000), attemptsThisPeriod: 1 }]);
  });

  it("does not walk a disabled endpoint's queues when it reads what is due", async () => {
    await endpoint('ep-paused');
    await endpoint('ep-live');
    await store.recordDeliveries(Array.from({ length: 300 }, (_, i) => delivery('ep-paused', `b${i}`, 1_000n + BigInt(i))), t0);
    await store.recordDeliveries([delivery('ep-live', 'b1', 2_000n)], t0);
    await store.updateEndpoint('ep-paused', { enabled: false });
    // The store's own statement, run under EXPLAIN ANALYZE: the recursion's row count is how many
    // queue heads it probed, which counts rows, not time, so the assertion cannot flake.
    const client = await db.pool.connect();
    try {
      const explaining = { query: (text: string, params: unknown[]) => client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params) };
      const [{ 'QUERY PLAN': [plan] }] = (await createPostgresWebhookStore(explaining as unknown as typeof db.pool).dueDeliveries(later(1_000), 10)) as unknown as [
        { 'QUERY PLAN': [{ Plan: PlanNode }] },
      ];
      const probed = planNodes(plan.Plan).find((node) => node['Node Type'] === 'Recursive Union')?.['Actual Rows'];
      expect(probed).toBeDefined();
      expect(probed).toBeLessThan(300);
    } finally {
      client.release();
    }
    expect((await store.dueDeliveries(later(1_000), 100)).map((due) => due.endpointId)).toContain('ep-live');
    expect((await store.dueDeliveries(later(1_000), 100)).map((due) => due.endpointId)).not.toContain('ep-paused');
  });

  it('counts disabled endpoints by who disabled them, and how long the oldest delivery pending on an enabled one has waited', async () => {
    // A schema of its own: the other tests' endpoints and deliveries would count here too.
    const own = await createTestSchema({ prefix: 'webhook_health' });
    try {
      const health = createPostgresWebhookStore(own.pool);
      const create = (id: string) => health.createEndpoint({ id, url: `http://127.0.0.1/${id}`, description: null, events: ['credit_balance.low'], secret: 'whsec_a', afterPosition: 0n });
      expect(await health.deliveryHealth()).toEqual({ disabledByTally: 0, paused: 0, oldestPendingAt: null });
      for (const id of ['ep-up', 'ep-failing', 'ep-paused', 'ep-failing-paused']) await create(id);
      const now = new Date();
      const ago = (minutes: number) => new Date(now.getTime() - minutes * 60_000);
      // Deliveries of different ages: recorded, then their recording time set back.
      const recorded: Array<[NewWebhookDelivery, Date]> = [
        [delivery('ep-up', 'b1', 1n), ago(120)],
        [delivery('ep-up', 'b1', 2n), ago(90)],
        [delivery('ep-up', 'b2', 3n), ago(30)],
        [delivery('ep-failing', 'b1', 4n), ago(4_320)],
        [delivery('ep-failing', 'b1', 5n), ago(1_440)],
        [delivery('ep-paused', 'b1', 6n), ago(2_880)],
        [delivery('ep-failing-paused', 'b1', 7n), ago(600)],
      ];
      await health.recordDeliveries(recorded.map(([d]) => d), now);
      for (const [d, at] of recorded) await own.pool.query('UPDATE webhook_deliveries SET created_at = $2 WHERE id = $1', [d.id, at]);
      const attempt = { attempt: 1, startedAt: now, durationMs: 3, statusCode: 503, error: null, responseBody: null };
      await health.recordAttempt('ep-up:1', { ...attempt, statusCode: 200 }, { status: 'succeeded' });
      await health.recordAttempt('ep-failing:4', attempt, { status: 'failed', disableReason: 'a delivery failed for 259200 s' });
      await health.recordAttempt('ep-failing-paused:7', attempt, { status: 'failed', disableReason: 'a delivery failed for 259200 s' });
      await health.updateEndpoint('ep-paused', { enabled: false });
      // Paused after Tally disabled it: still Tally's, and still failing.
      await health.updateEndpoint('ep-failing-paused', { enabled: false });

      // ep-up:1 was delivered; the disabled endpoints' older deliveries wait and do not count.
      expect(await health.deliveryHealth()).toEqual({ disabledByTally: 2, paused: 1, oldestPendingAt: ago(90) });
      await health.updateEndpoint('ep-paused', { enabled: true });
      expect(await health.deliveryHealth()).toEqual({ disabledByTally: 2, paused: 0, oldestPendingAt: ago(2_880) });
      for (const id of ['ep-paused:6', 'ep-up:2', 'ep-up:3']) await health.recordAttempt(id, { ...attempt, attempt: 2, statusCode: 200 }, { status: 'succeeded' });
      expect(await health.deliveryHealth()).toEqual({ disabledByTally: 2, paused: 0, oldestPendingAt: null });

      // Indexed: a queue of 300 pending deliveries costs the read one probe, not 300 rows.
      await health.recordDeliveries(Array.from({ length: 300 }, (_, i) => delivery('ep-up', 'b3', 1_000n + BigInt(i))), now);
      const client = await own.pool.connect();
      try {
        const explaining = { query: (text: string, params: unknown[]) => client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params) };
        const { 'QUERY PLAN': [plan] } = (await createPostgresWebhookStore(explaining as unknown as typeof own.pool).deliveryHealth()) as unknown as {
          'QUERY PLAN': [{ Plan: PlanNode }];
        };
        expect(planNodes(plan.Plan).find((node) => node['Node Type'] === 'Recursive Union')?.['Actual Rows']).toBe(1);
      } finally {
        client.release();
      }
    } finally {
      await own.drop();
    }
  });

  it('signs with the previous secret only until its grace period ends', async () => {
    await endpoint('ep-rotate');
    await store.rotateSecret('ep-rotate', 'whsec_b', later(60_000));
    await store.recordDeliveries([delivery('ep-rotate', 'b1', 30n)], t0);
    expect((await store.dueDeliveries(later(1_000), 100)).find((due) => due.id === 'ep-rotate:30')?.secrets).toEqual(['whsec_b', 'whsec_a']);
    expect((await store.dueDeliveries(later(60_000), 100)).find((due) => due.id === 'ep-rotate:30')?.secrets).toEqual(['whsec_b']);
  });

  it('deletes an endpoint with its deliveries, and records none for a deleted one', async () => {
    await endpoint('ep-delete');
    await store.recordDeliveries([delivery('ep-delete', 'b1', 40n)], t0);
    expect(await store.deleteEndpoint('ep-delete')).toBe(true);
    expect(await store.deleteEndpoint('ep-delete')).toBe(false);
    await store.recordDeliveries([delivery('ep-delete', 'b1', 41n)], t0);
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = 'ep-delete'");
    expect(rows[0].n).toBe(0);
    // An attempt that was running when its endpoint was deleted is dropped, not an error.
    await expect(
      store.recordAttempt('ep-delete:40', { attempt: 1, startedAt: t0, durationMs: 1, statusCode: 200, error: null, responseBody: null }, { status: 'succeeded' }),
    ).resolves.toBeUndefined();
  });
});

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Actual Rows': number;
  readonly Plans?: readonly PlanNode[];
}

function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}
