import { createTestSchema, type TestSchema } from '@tally/test-support';
import { createPostgresWebhookStore } from './postgresWebhookStore';
import type { NewWebhookDelivery, WebhookStore } from './webhookStore';

describe('PostgreSQL webhook store', () => {
  let db: TestSchema;
  let store: WebhookStore;
  const t0 = new Date('2026-11-30T12:00:00Z');
  const later = (ms: number) => new Date(t0.getTime() + ms);

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
    expect((await store.dueDeliveries(later(10_000), 10)).filter((due) => due.endpointId === 'ep-gone').map((due) => due.id)).toEqual(['ep-gone:21']);
    const retried = await store.retryDelivery('ep-gone', 'ep-gone:20', later(11_000));
    expect(retried).toMatchObject({ status: 'pending', firstAttemptAt: null, nextAttemptAt: later(11_000) });
    expect(await store.retryDelivery('ep-order', 'ep-gone:20', later(11_000))).toBeUndefined();
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
