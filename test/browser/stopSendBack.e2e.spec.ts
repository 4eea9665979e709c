import { randomUUID } from 'node:crypto';
import { stackConfig, startKafkaProxy, waitFor, type KafkaProxy } from '@tally/test-support';
import { startConsoleStack, type ConsoleStack } from './startConsoleStack';

jest.setTimeout(180_000);

/** Kafka's Fetch request's API key. */
const FETCH = 1;

/**
 * The console's Stop on a running send-back, in Chromium against the real API process. The
 * process reaches Kafka through a proxy that can swallow its fetches, so the send-back's read
 * of the dead-letter topic waits until it is stopped: otherwise a run over a few letters ends
 * before anyone could click.
 */
describe('stopping a send-back from the console', () => {
  let proxy: KafkaProxy;
  let stack: ConsoleStack;

  beforeAll(async () => {
    proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    stack = await startConsoleStack({ prefix: 'browser_stop', roles: 'api', adminKey: `browser-admin-${randomUUID()}`, kafkaBroker: proxy.broker });
  });

  afterAll(async () => {
    // Fetches flow again, so the process's readers stop promptly.
    proxy?.swallow([]);
    proxy?.down();
    proxy?.resume();
    await stack?.close();
    await proxy?.close();
  });

  it('stops a running send-back by its own button, and says who stopped it', async () => {
    await stack.producer.send({ topic: stack.dlqTopic, messages: [{ key: 'gus', value: '{"this is": not json' }] });
    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await stack.signIn(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
    const runRow = page.getByRole('table', { name: 'Send-backs' }).locator('tbody tr').first();
    await waitFor(async () => ((await runRow.innerText({ timeout: 1000 })) === 'None yet.' ? true : undefined), { description: 'the empty send-backs table' });

    // From here the process's reads of Kafka wait for ever: the send-back cannot end by itself.
    proxy.swallow([FETCH]);
    await page.getByRole('button', { name: 'Send back' }).click();
    await page.getByRole('dialog', { name: 'Send dead letters back' }).getByRole('button', { name: 'Send back' }).click();
    const stop = page.getByRole('button', { name: /^Stop the send-back of every error code started / });
    await stop.waitFor({ timeout: 30_000 });
    expect(await runRow.locator('td').nth(4).innerText()).toMatch(/^Running/);
    // By keyboard, as every control of the console.
    await stop.focus();
    await page.keyboard.press('Enter');

    // The run stops after the batch at hand: the fetch it waits on ends once its connection is
    // cut (and a reader not yet stopped fetches again, and waits again).
    const status = await waitFor(
      async () => {
        proxy.down();
        proxy.resume();
        const text = await runRow.locator('td').nth(4).innerText({ timeout: 1000 });
        return text.startsWith('Running') || text.startsWith('Stopping') ? undefined : text;
      },
      { description: 'the send-back stopped', timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(status).toBe('Stopped by operator');
    expect(await stop.count()).toBe(0);
    expect(await runRow.locator('td').nth(8).innerText()).not.toBe('');
    await context.close();
  });
});
