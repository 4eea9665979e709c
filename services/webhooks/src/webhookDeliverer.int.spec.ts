import { randomUUID } from 'node:crypto';
import { balanceStreamId, ValidationError } from '@tally/domain';
import { createMetricsRegistry, type MetricsRegistry } from '@tally/metrics';
import { waitFor } from '@tally/test-support';
import pino from 'pino';
import { createWebhookEndpointService } from './webhookEndpointService';
import { createWebhookHarness, type WebhookHarness } from './testing/webhookHarness';
import { startWebhookReceiver, type WebhookReceiver } from './testing/webhookReceiver';
import { sendsPerEndpoint } from './webhookDispatcher';
import { webhookMessageId } from './webhookMessageId';
import { createWebhookSender } from './webhookSender';

jest.setTimeout(120_000);

/** Each balance's webhooks as the receiver first got them, by ledger position. */
function positionsByBalance(receiver: WebhookReceiver): Map<string, bigint[]> {
  const byBalance = new Map<string, bigint[]>();
  for (const { payload } of receiver.delivered) {
    const list = byBalance.get(payload.data.balance.id) ?? [];
    list.push(BigInt(payload.data.position));
    byBalance.set(payload.data.balance.id, list);
  }
  return byBalance;
}

describe('webhook deliverer', () => {
  let harness: WebhookHarness;
  const receivers: WebhookReceiver[] = [];

  beforeEach(async () => {
    harness = await createWebhookHarness('webhook_deliverer');
  });

  afterEach(async () => {
    await harness.close();
    await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  });

  const BALANCE_EVENTS = ['credit_balance.low', 'credit_balance.depleted', 'credit_balance.topped_up', 'credit_balance.purchased', 'credit_balance.granted', 'credit_balance.refunded'];

  async function receiverWithEndpoint(events: readonly string[] = BALANCE_EVENTS): Promise<{ receiver: WebhookReceiver; endpointId: string; afterPosition: bigint }> {
    const receiver = await startWebhookReceiver();
    receivers.push(receiver);
    const endpoint = await harness.endpoints.create({ url: receiver.url, events });
    receiver.secrets = [endpoint.secret];
    return { receiver, endpointId: endpoint.id, afterPosition: endpoint.afterPosition };
  }

  it('delivers every webhook, verified and in order per balance, across a receiver failing with 500s and timeouts', async () => {
    const { receiver, endpointId, afterPosition } = await receiverWithEndpoint();
    const balances = [await harness.openBalance(), await harness.openBalance()];
    receiver.mode = { kind: 'status', status: 500 };
    const deliverer = harness.createDeliverer();
    await deliverer.start();
    for (const [round, balanceId] of balances.entries()) await harness.driveRound(balanceId, round);
    await waitFor(() => receiver.requests.filter((request) => request.answered === 500).length >= 4, { description: 'attempts answered 500' });
    receiver.mode = { kind: 'hang' };
    await waitFor(() => receiver.requests.filter((request) => request.answered === 'hung').length >= 4, { description: 'attempts that time out' });
    receiver.mode = { kind: 'ok' };
    for (const [round, balanceId] of balances.entries()) await harness.driveRound(balanceId, round + 2);

    const expected = await harness.expectedWebhooks(afterPosition);
    expect(new Set(expected.map((webhook) => webhook.type))).toEqual(
      new Set(['credit_balance.low', 'credit_balance.depleted', 'credit_balance.topped_up', 'credit_balance.purchased', 'credit_balance.granted', 'credit_balance.refunded']),
    );
    await waitFor(() => receiver.delivered.length >= expected.length, { description: `${expected.length} webhooks`, timeoutMs: 60_000 });

    expect(receiver.rejected).toEqual([]);
    // Every event once per webhook-id, and that id is the one derived from endpoint and event.
    expect(receiver.delivered.map((webhook) => webhook.id).sort()).toEqual(expected.map((webhook) => webhookMessageId(endpointId, webhook.eventId)).sort());
    expect(receiver.delivered.map((webhook) => webhook.payload.data.eventId).sort()).toEqual(expected.map((webhook) => webhook.eventId).sort());
    // In ledger order per balance, whatever the failures in between.
    for (const [balanceId, positions] of positionsByBalance(receiver)) {
      expect([balanceId, positions]).toEqual([balanceId, [...positions].sort((a, b) => (a < b ? -1 : 1))]);
    }
    // The payload's figures are the balance just after its event.
    for (const { payload } of receiver.delivered) {
      expect(payload.data.balance.held).toBe('0');
      expect(payload.data.balance.available).toBe(payload.data.balance.balance);
      if (payload.type === 'credit_balance.low' || payload.type === 'credit_balance.depleted') {
        expect(payload.data.balance.balance).toBe(payload.data.event.balance);
      } else {
        expect(payload.data.balance.balance).toBe(payload.data.event.balanceAfter);
      }
    }

    // The last attempts are recorded just after the receiver answered them.
    const deliveries = await waitFor(
      async () => {
        const listed = await harness.endpoints.deliveries(endpointId, { limit: 500 });
        return listed.every((delivery) => delivery.status === 'succeeded') && listed;
      },
      { description: 'every delivery recorded as succeeded' },
    );
    expect(deliveries).toHaveLength(expected.length);
    const attempts = deliveries.flatMap((delivery) => delivery.attemptLog);
    expect(attempts.some((attempt) => attempt.statusCode === 500 && attempt.responseBody === 'failing on purpose (500)')).toBe(true);
    expect(attempts.some((attempt) => attempt.statusCode === null && attempt.error === 'response timeout after 400 ms')).toBe(true);
  });

  it('gives a delivery up after the retry period, disables the endpoint with the reason, and delivers once re-enabled and retried by hand', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId, afterPosition } = await receiverWithEndpoint();
    receiver.mode = { kind: 'status', status: 503 };
    const deliverer = harness.createDeliverer({ retry: { initialDelayMs: 20, maxDelayMs: 100, retryForMs: 600 } });
    await deliverer.start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'one webhook' });

    const disabled = await waitFor(async () => (await harness.endpoints.get(endpointId)).disabled, { description: 'the endpoint disabled' });
    expect(disabled.reason).toMatch(/HTTP 503/);
    const [given] = await harness.endpoints.deliveries(endpointId, { limit: 10 });
    expect(given).toMatchObject({ status: 'failed' });
    expect(given!.attemptLog.length).toBeGreaterThan(1);

    receiver.mode = { kind: 'ok' };
    await harness.endpoints.update(endpointId, { enabled: true });
    await harness.endpoints.retry(endpointId, given!.id);
    await waitFor(() => receiver.delivered.length === 1, { description: 'the retried webhook' });
    const [expected] = await harness.expectedWebhooks(afterPosition);
    expect(receiver.delivered[0]).toMatchObject({ id: given!.id, payload: { data: { eventId: expected!.eventId } } });
  });

  it("sends a given-up delivery again once its endpoint is enabled, ahead of its balance's later ones", async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId, afterPosition } = await receiverWithEndpoint();
    receiver.mode = { kind: 'status', status: 503 };
    await harness.createDeliverer({ retry: { initialDelayMs: 20, maxDelayMs: 100, retryForMs: 600 } }).start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'given up' });
    await waitFor(async () => (await harness.endpoints.get(endpointId)).disabled, { description: 'the endpoint disabled' });
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'recorded while disabled' });
    await waitFor(async () => (await harness.endpoints.deliveries(endpointId, { limit: 10 })).map((delivery) => delivery.status).join() === 'pending,failed', {
      description: 'the later delivery recorded behind the given-up one',
    });

    receiver.mode = { kind: 'ok' };
    await harness.endpoints.update(endpointId, { enabled: true });
    const expected = await harness.expectedWebhooks(afterPosition);
    expect(expected).toHaveLength(2);
    await waitFor(async () => (await harness.endpoints.deliveries(endpointId, { limit: 10 })).every((delivery) => delivery.status === 'succeeded'), {
      description: 'both deliveries sent',
    });
    expect(receiver.delivered.map((webhook) => webhook.payload.data.eventId)).toEqual(expected.map((webhook) => webhook.eventId));
  });

  it('keeps the events of a disabled endpoint and sends them, in order, once it is enabled again', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId, afterPosition } = await receiverWithEndpoint();
    await harness.endpoints.update(endpointId, { enabled: false });
    await harness.createDeliverer().start();
    await harness.driveRound(balanceId, 0);
    const expected = await harness.expectedWebhooks(afterPosition);
    await waitFor(async () => (await harness.endpoints.deliveries(endpointId, { limit: 500 })).length === expected.length, {
      description: 'the deliveries recorded while the endpoint is disabled',
    });
    expect(receiver.requests).toEqual([]);

    await harness.endpoints.update(endpointId, { enabled: true });
    await waitFor(() => receiver.delivered.length === expected.length, { description: 'the deliveries sent once enabled' });
    expect(receiver.delivered.map((webhook) => webhook.payload.data.eventId)).toEqual(expected.map((webhook) => webhook.eventId));
  });

  it('stops without waiting for a hung receiver: that attempt is dropped, and the next deliverer makes it', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId } = await receiverWithEndpoint();
    receiver.mode = { kind: 'hang' };
    const first = harness.createDeliverer({ send: createWebhookSender({ allowPrivateNetworks: true, connectTimeoutMs: 1_000, responseTimeoutMs: 600_000 }) });
    await first.start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'to a hung receiver' });
    await waitFor(() => receiver.requests.length === 1, { description: 'the attempt the receiver holds' });
    await first.stop();
    const [held] = await harness.endpoints.deliveries(endpointId, { limit: 10 });
    // Had the stop waited for the answer (600 s), the attempt would be recorded as timed out.
    expect(held).toMatchObject({ status: 'pending', attempts: 0, attemptLog: [] });

    receiver.mode = { kind: 'ok' };
    await harness.createDeliverer().start();
    await waitFor(() => receiver.delivered.length === 1, { description: 'the webhook from the next deliverer' });
    expect(receiver.delivered[0]!.id).toBe(held!.id);
  });

  it('sends to other endpoints while one hangs: a hung receiver holds back its own deliveries and at most half the lanes', async () => {
    const hung = await receiverWithEndpoint();
    hung.receiver.mode = { kind: 'hang' };
    const balances = await Promise.all(Array.from({ length: 12 }, () => harness.openBalance()));
    // Twelve deliveries due to the hung receiver, all older than anything the other one gets.
    for (const balanceId of balances) await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'to a hung receiver' });
    const healthy = await receiverWithEndpoint();
    await harness.ledger.topUp(balances[0]!, { credits: 1_000_000n, reason: 'to both' });
    const deliverer = harness.createDeliverer({ concurrency: 4, send: createWebhookSender({ allowPrivateNetworks: true, connectTimeoutMs: 1_000, responseTimeoutMs: 600_000 }) });
    await deliverer.start();

    await waitFor(() => healthy.receiver.delivered.length === 1, { description: "the other endpoint's webhook, while the hung receiver holds its attempts" });
    await waitFor(() => hung.receiver.requests.length === sendsPerEndpoint(4), { description: "the hung receiver's attempts" });
    // None of the hung receiver's attempts ended (600 s): the other endpoint did not wait for them.
    const held = await harness.endpoints.deliveries(hung.endpointId, { limit: 50 });
    expect(held.map((delivery) => delivery.attempts)).toEqual(held.map(() => 0));
    await harness.ledger.topUp(balances[1]!, { credits: 1_000_000n, reason: 'while it still hangs' });
    await waitFor(() => healthy.receiver.delivered.length === 2, { description: 'a webhook recorded while the hung attempts are still in flight' });
    expect(hung.receiver.requests).toHaveLength(sendsPerEndpoint(4));
  });

  it('records a 200 whose answer holds a NUL (which PostgreSQL text cannot store) as delivered, and sends it once', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId } = await receiverWithEndpoint();
    receiver.mode = { kind: 'ok', body: 'ok\u0000' };
    await harness.createDeliverer().start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'to a receiver answering a NUL' });
    const [delivered] = await waitFor(
      async () => {
        const listed = await harness.endpoints.deliveries(endpointId, { limit: 10 });
        return listed[0]?.status === 'succeeded' && listed;
      },
      { description: 'the delivery recorded as succeeded' },
    );
    expect(delivered!.attemptLog).toEqual([expect.objectContaining({ attempt: 1, statusCode: 200, responseBody: 'ok\ufffd' })]);
    // Recorded: not sent again by the rounds since.
    expect(receiver.requests).toHaveLength(1);
  });

  it('fails, for its process to stop and a standby to take over, on a failure that trying again cannot change', async () => {
    const balanceId = await harness.openBalance();
    await receiverWithEndpoint();
    const refused = new ValidationError('deliveries the store refuses');
    const deliverer = harness.createDeliverer({ store: { ...harness.store, recordDeliveries: () => Promise.reject(refused) } });
    const failures: unknown[] = [];
    deliverer.onFailure((error) => failures.push(error));
    await deliverer.start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'one webhook' });
    await waitFor(() => failures.length > 0, { description: "the deliverer's failure" });
    expect(failures).toEqual([refused]);
    expect(deliverer.state()).toBe('failed');
  });

  it("waits out a ledger event it cannot fold (a newer release's), naming it, without failing or skipping it", async () => {
    const [balanceId, laterId] = [await harness.openBalance(), await harness.openBalance()];
    const { receiver } = await receiverWithEndpoint();
    const lines: string[] = [];
    const deliverer = harness.createDeliverer({ logger: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }) });
    const failures: unknown[] = [];
    deliverer.onFailure((error) => failures.push(error));
    await deliverer.start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'delivered' });
    await waitFor(() => receiver.delivered.length === 1, { description: 'the webhook before the unfoldable event' });
    const [template] = (await harness.eventStore.readStream(balanceStreamId(balanceId))).filter((event) => event.type === 'CreditToppedUp').slice(-1);
    const unfoldable = randomUUID();
    await harness.eventStore.appendToStream(
      template!.streamId,
      [{ id: unfoldable, type: template!.type, data: { ...template!.data, credits: '1.0000001' } }],
      { expectedRevision: template!.revision },
    );
    await harness.ledger.topUp(laterId, { credits: 1_000_000n, reason: 'after the unfoldable event' });
    await waitFor(() => lines.filter((line) => line.includes(unfoldable) && line.includes('retrying')).length >= 2, { description: 'the unfoldable event retried, named' });
    expect(failures).toEqual([]);
    expect(deliverer.state()).toBe('running');
    // Not skipped: the later event waits behind it.
    expect(receiver.delivered).toHaveLength(1);
  });

  it('leaves a lane to an endpoint with nothing in flight when two endpoints\' receivers hang, the first due alone (concurrency 5)', async () => {
    // At concurrency 5, ⌊C/2⌋ = 2: the first hung receiver, alone, takes a second lane (an
    // endpoint with a send in flight, while fewer than half the lanes are busy), which a
    // concurrency of 3 (⌊C/2⌋ = 1) never lets happen.
    const hangingSender = createWebhookSender({ allowPrivateNetworks: true, connectTimeoutMs: 1_000, responseTimeoutMs: 600_000 });
    const balances = await Promise.all(Array.from({ length: 4 }, () => harness.openBalance()));
    const topUpAll = async (reason: string) => {
      for (const balanceId of balances) await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason });
    };
    const first = await receiverWithEndpoint();
    first.receiver.mode = { kind: 'hang' };
    await topUpAll('to the first hung receiver');
    await harness.createDeliverer({ concurrency: 5, send: hangingSender }).start();
    // Alone, the first takes every lane it may: two.
    await waitFor(() => first.receiver.requests.length === sendsPerEndpoint(5), { description: 'the first hung receiver holding its lanes' });
    expect(sendsPerEndpoint(5)).toBe(2);

    const second = await receiverWithEndpoint();
    second.receiver.mode = { kind: 'hang' };
    await topUpAll('to both hung receivers');
    await waitFor(() => second.receiver.requests.length > 0, { description: 'the second hung receiver holding a lane' });

    const healthy = await receiverWithEndpoint();
    await harness.ledger.topUp(balances[0]!, { credits: 1_000_000n, reason: 'to all three' });
    await waitFor(() => healthy.receiver.delivered.length === 1, { description: "the third endpoint's webhook while two receivers hang" });
    // max(k, ⌊C/2⌋ + k − 1) with C = 5, k = 2: the first two lanes, the second one.
    expect([first.receiver.requests.length, second.receiver.requests.length]).toEqual([2, 1]);
  });

  it('reports, from the delivering process, the endpoints disabled by who disabled them and how long the oldest pending delivery has waited', async () => {
    const balanceId = await harness.openBalance();
    const failing = await receiverWithEndpoint();
    failing.receiver.mode = { kind: 'status', status: 503 };
    const paused = await receiverWithEndpoint();
    await harness.endpoints.update(paused.endpointId, { enabled: false });
    const metricsOf = (registry: MetricsRegistry) => ({
      registry,
      lagEvents: { name: 'tally_webhooks_lag_events', help: 'lag' },
      lagSeconds: { name: 'tally_webhooks_lag_seconds', help: 'lag' },
      leading: { name: 'tally_webhooks_delivering', help: 'leading' },
    });
    const [leading, standingBy] = [createMetricsRegistry(), createMetricsRegistry()];
    const deliverer = harness.createDeliverer({ metrics: metricsOf(leading) });
    await deliverer.start();
    await waitFor(() => deliverer.isLeading(), { description: 'the first deliverer leading' });
    const standby = harness.createDeliverer({ metrics: metricsOf(standingBy) });
    await standby.start();
    /** The two gauges as /metrics renders them. */
    const scraped = async (registry: MetricsRegistry) => {
      const text = await registry.render();
      return {
        disabled: Object.fromEntries([...text.matchAll(/^tally_webhooks_endpoints_disabled\{reason="(\w+)"\} (\S+)$/gm)].map((found) => [found[1], Number(found[2])])),
        oldestPending: Number(/^tally_webhooks_oldest_pending_seconds (\S+)$/m.exec(text)?.[1]),
      };
    };
    expect(await scraped(leading)).toEqual({ disabled: { gave_up: 0, paused: 1 }, oldestPending: 0 });

    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'one webhook' });
    const [pending] = await waitFor(
      async () => {
        const listed = await harness.endpoints.deliveries(failing.endpointId, { limit: 10 });
        return listed[0] !== undefined && listed[0].attempts > 0 && listed;
      },
      { description: 'a delivery failing at its receiver' },
    );
    // Recorded two hours ago, as far as the gauge can tell.
    await harness.db.pool.query(`UPDATE webhook_deliveries SET created_at = now() - interval '2 hours' WHERE id = $1`, [pending!.id]);
    const waited = await scraped(leading);
    expect(waited.disabled).toEqual({ gave_up: 0, paused: 1 });
    expect(waited.oldestPending).toBeGreaterThanOrEqual(7_200);
    expect(waited.oldestPending).toBeLessThan(7_300);

    // Given up as the sender gives it up (past the retry period, which this test does not wait for).
    const attempt = { attempt: 1_000, startedAt: new Date(), durationMs: 1, statusCode: 503, error: null, responseBody: null };
    await harness.store.recordAttempt(pending!.id, attempt, { status: 'failed', disableReason: 'a delivery failed for 259200 s' });
    expect(await scraped(leading)).toEqual({ disabled: { gave_up: 1, paused: 1 }, oldestPending: 0 });
    // The standby reads nothing: no disabled endpoints, and 0.
    expect(await scraped(standingBy)).toEqual({ disabled: {}, oldestPending: 0 });
  });

  it('deletes what it delivered once the retention has passed, and keeps what is still to be sent', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId } = await receiverWithEndpoint();
    const deliverer = harness.createDeliverer({ retention: { deliveredMs: 200, intervalMs: 50 } });
    await deliverer.start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'delivered, then deleted' });
    await waitFor(() => receiver.delivered.length === 1, { description: 'the webhook delivered' });
    receiver.mode = { kind: 'status', status: 503 };
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'still to be sent' });
    await waitFor(
      async () => {
        const listed = await harness.endpoints.deliveries(endpointId, { limit: 10 });
        return listed.length === 1 && listed[0]!.status === 'pending' && listed[0]!.attempts > 0;
      },
      { description: 'the delivered webhook deleted, the failing one kept' },
    );
  });

  it('sends hold.expired when a hold is freed at its expiry, with the balance, held and available after it', async () => {
    const balanceId = await harness.openBalance();
    const { receiver } = await receiverWithEndpoint(['hold.expired']);
    const expiring = await harness.ledger.placeHold(balanceId, { credits: 5_000_000n, expires: { inSeconds: 60 }, reference: 'job-1' }, { idempotencyKey: 'hold-1' });
    await harness.ledger.placeHold(balanceId, { credits: 3_000_000n, expires: { inSeconds: 3_600 }, reference: 'job-2' }, { idempotencyKey: 'hold-2' });
    harness.advanceLedgerClock(120_000);
    const expired = await harness.ledger.expireHold(expiring.holdId);
    await harness.createDeliverer().start();

    await waitFor(() => receiver.delivered.length === 1, { description: 'the hold.expired webhook' });
    expect(receiver.rejected).toEqual([]);
    expect(receiver.delivered[0]!.payload).toMatchObject({
      type: 'hold.expired',
      data: {
        eventId: expired.events[0]!.eventId,
        eventType: 'HoldExpired',
        balance: { id: balanceId, balance: '20', held: '3', available: '17' },
        event: { holdId: expiring.holdId },
      },
    });
  });

  it('keeps signing with the previous secret during the grace period after a rotation', async () => {
    const balanceId = await harness.openBalance();
    const { receiver, endpointId } = await receiverWithEndpoint();
    const oldSecret = receiver.secrets[0]!;
    const rotated = await harness.endpoints.rotateSecret(endpointId);
    expect(rotated.secret).not.toBe(oldSecret);
    // A receiver that has not switched yet still verifies.
    receiver.secrets = [oldSecret];
    await harness.createDeliverer().start();
    await harness.ledger.topUp(balanceId, { credits: 1_000_000n, reason: 'after the rotation' });
    await waitFor(() => receiver.delivered.length === 1, { description: 'a webhook verified with the old secret' });
    expect(receiver.rejected).toEqual([]);
  });

  it('refuses an endpoint on a private address without the setting, and stores nothing', async () => {
    const strict = createWebhookEndpointService({ store: harness.store, eventStore: harness.eventStore, secretGraceMs: 0, clock: () => new Date(), allowPrivateNetworks: false });
    await expect(strict.create({ url: 'http://127.0.0.1:9/hook', events: ['credit_balance.low'] })).rejects.toThrow(/TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS/);
    await expect(strict.create({ url: 'http://169.254.169.254/latest', events: ['credit_balance.low'] })).rejects.toThrow(/non-public/);
    await expect(strict.create({ url: 'http://localhost:9/hook', events: ['credit_balance.low'] })).rejects.toThrow(/non-public/);
    expect(await strict.list({ limit: 10 })).toEqual([]);
  });
});
