import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from '@tally/test-support';
import { createWebhookHarness, type WebhookHarness } from './testing/webhookHarness';
import { startWebhookReceiver, type WebhookReceiver } from './testing/webhookReceiver';
import { webhookMessageId } from './webhookMessageId';

jest.setTimeout(180_000);

/** The built entry (`npx tsc -b tsconfig.build.json`, which `npm test` runs before jest). */
const DELIVERER_PROCESS = path.resolve(__dirname, '../dist/testing/delivererProcess.js');

describe('webhook deliverer across processes', () => {
  let harness: WebhookHarness;
  let receiver: WebhookReceiver;
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await receiver?.close();
    await harness?.close();
  });

  function startProcess(name: string): { child: ChildProcess; output: () => string } {
    let output = '';
    const child = spawn(process.execPath, [DELIVERER_PROCESS], {
      env: {
        ...process.env,
        TALLY_TEST_DATABASE_URL: harness.db.connectionString,
        TALLY_TEST_DATABASE_SCHEMA: harness.db.schema,
        TALLY_TEST_WEBHOOKS_NAME: harness.name,
        TALLY_TEST_LOG_LEVEL: process.env.TALLY_TEST_LOG_LEVEL ?? 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (process.env.TALLY_TEST_LOG_LEVEL !== undefined) process.stdout.write(`[${name}] ${chunk.toString()}`);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    children.push(child);
    return { child, output: () => output };
  }

  it('delivers every low-balance and depletion webhook across 500s, a SIGKILL of the delivering process mid-stream, the takeover, and timeouts', async () => {
    if (!existsSync(DELIVERER_PROCESS)) throw new Error(`${DELIVERER_PROCESS} is missing: run npx tsc -b tsconfig.build.json first`);
    harness = await createWebhookHarness('webhook_takeover');
    receiver = await startWebhookReceiver();
    const balances = await Promise.all(Array.from({ length: 4 }, () => harness.openBalance()));
    const endpoint = await harness.endpoints.create({ url: receiver.url, events: ['credit_balance.low', 'credit_balance.depleted'] });
    receiver.secrets = [endpoint.secret];

    const first = startProcess('first');
    await waitFor(() => first.output().includes('webhook deliverer process started'), { description: 'the first deliverer up' });
    const second = startProcess('second');
    await waitFor(() => second.output().includes('webhook deliverer process started'), { description: 'the second deliverer up' });
    expect(first.output()).toContain('"leading":true');
    expect(second.output()).toContain('"leading":false');

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
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    expect(driven).toBeLessThan(rounds);
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
    expect(second.output()).toContain('"msg":"processing"');
    // Per balance in ledger order, across the kill.
    for (const balanceId of balances) {
      const positions = receiver.delivered.filter((webhook) => webhook.payload.data.balance.id === balanceId).map((webhook) => BigInt(webhook.payload.data.position));
      expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
    }

    second.child.kill('SIGTERM');
    const [code] = (await once(second.child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});
