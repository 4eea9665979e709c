import { startTallyProcess, waitFor, type TallyProcess } from '@tally/test-support';
import { createWebhookHarness, TEST_DELIVERER_ENV, type WebhookHarness } from './testing/webhookHarness';
import { startWebhookReceiver, type WebhookReceiver } from './testing/webhookReceiver';
import { webhookMessageId } from './webhookMessageId';

jest.setTimeout(180_000);

/** The processor's line on taking up work carries the checkpoint it starts `after`; no other line does. */
const leads = (tally: TallyProcess) => tally.lines.some((line) => /"processor":"webhooks".*"after":"[0-9]+"/.test(line));
const standsBy = (tally: TallyProcess) => tally.lines.some((line) => line.includes('"processor":"webhooks"') && line.includes('standing by'));

describe('the webhooks role across processes', () => {
  let harness: WebhookHarness;
  let receiver: WebhookReceiver;
  const processes: TallyProcess[] = [];

  afterAll(async () => {
    await Promise.allSettled(processes.map((tally) => tally.kill('SIGKILL')));
    await receiver?.close();
    await harness?.close();
  });

  /** The main job with the webhooks role only, on the harness's schema, with the test timings. */
  async function startDeliverer(): Promise<TallyProcess> {
    const tally = await startTallyProcess({
      env: {
        TALLY_ROLES: 'webhooks',
        TALLY_DATABASE_URL: harness.db.connectionString,
        TALLY_DATABASE_SCHEMA: harness.db.schema,
        TALLY_DATABASE_POOL_SIZE: '4',
        ...TEST_DELIVERER_ENV,
      },
    });
    processes.push(tally);
    return tally;
  }

  it('delivers every low-balance and depletion webhook across 500s, a SIGKILL of the delivering process mid-stream, the takeover, and timeouts', async () => {
    harness = await createWebhookHarness('webhook_takeover');
    receiver = await startWebhookReceiver();
    const balances = await Promise.all(Array.from({ length: 4 }, () => harness.openBalance()));
    const endpoint = await harness.endpoints.create({ url: receiver.url, events: ['credit_balance.low', 'credit_balance.depleted'] });
    receiver.secrets = [endpoint.secret];

    const first = await startDeliverer();
    await waitFor(() => leads(first), { description: 'the first process to deliver' });
    const second = await startDeliverer();
    await waitFor(() => standsBy(second), { description: 'the second process to stand by' });

    // A stream of ledger events the first process delivers until it is killed in the middle.
    const rounds = 6;
    let driven = 0;
    const driving = (async () => {
      for (let round = 0; round < rounds; round += 1) {
        for (const balanceId of balances) await harness.driveRound(balanceId, round);
        driven = round + 1;
      }
    })();
    await waitFor(() => receiver.delivered.length >= 6, { description: 'the first webhooks from the first process' });
    // The receiver fails with 500s, the delivering process dies, then the receiver hangs (timeouts), then recovers.
    const answered = (what: number | 'hung') => receiver.requests.filter((request) => request.answered === what).length;
    receiver.mode = { kind: 'status', status: 500 };
    await waitFor(() => answered(500) >= 3, { description: 'attempts answered 500' });
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');
    expect(driven).toBeLessThan(rounds);
    await waitFor(() => leads(second), { description: 'the second process to take over', timeoutMs: 30_000 });
    const hungBefore = answered('hung');
    receiver.mode = { kind: 'hang' };
    await waitFor(() => answered('hung') >= hungBefore + 3, { description: 'attempts of the second process timing out' });
    receiver.mode = { kind: 'ok' };
    await driving;

    const expected = (await harness.expectedWebhooks(endpoint.afterPosition)).filter((webhook) => endpoint.events.includes(webhook.type));
    expect(expected.filter((webhook) => webhook.type === 'credit_balance.low')).toHaveLength(rounds * balances.length);
    expect(expected.filter((webhook) => webhook.type === 'credit_balance.depleted')).toHaveLength(rounds * balances.length);
    await waitFor(() => receiver.delivered.length >= expected.length, { description: `${expected.length} webhooks after the takeover`, timeoutMs: 90_000 });

    expect(receiver.rejected).toEqual([]);
    expect(receiver.delivered.map((webhook) => webhook.id).sort()).toEqual(expected.map((webhook) => webhookMessageId(endpoint.id, webhook.eventId)).sort());
    // Per balance in ledger order, across the kill.
    for (const balanceId of balances) {
      const positions = receiver.delivered.filter((webhook) => webhook.payload.data.balance.id === balanceId).map((webhook) => BigInt(webhook.payload.data.position));
      expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
    }
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
