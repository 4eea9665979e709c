import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { stackConfig, startKafkaProxy, waitCuttingConnections, waitFor, type KafkaProxy } from '@tally/test-support';
import { startConsoleStack, type ConsoleStack } from './startConsoleStack';

jest.setTimeout(180_000);

/** Kafka's Fetch request's API key. */
const FETCH = 1;
const CLI = path.resolve(__dirname, '..', '..', 'services', 'tally', 'dist', 'cli.js');

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
    // Newest first: once this test starts its run, the first row is it. The other test's run, if it
    // ran first, has stopped; the table is read when no run is going.
    const runRow = page.getByRole('table', { name: 'Send-backs' }).locator('tbody tr').first();
    await waitFor(
      async () => {
        const text = await runRow.innerText({ timeout: 1000 });
        return text === 'None yet.' || (text !== '' && !/Running|Stopping/.test(text)) ? true : undefined;
      },
      { description: 'the send-backs table, with no run going' },
    );

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
    const status = await waitCuttingConnections(
      proxy,
      async () => {
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

  it("lists tally redrive's run from a shell and stops it by its button; the command says who stopped it", async () => {
    // A letter of its own to send back, whichever test ran first: with none, the command has nothing to read and ends at once.
    await stack.producer.send({ topic: stack.dlqTopic, messages: [{ key: 'gus', value: '{"from the shell": not json' }] });
    // The command uses the main job's environment, and so the same proxy: its read waits too.
    proxy.swallow([FETCH]);
    const command = spawn(process.execPath, [CLI, 'redrive', '--all'], { env: { ...process.env, ...stack.env } });
    let stderr = '';
    command.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exitCode: number | null | undefined;
    command.on('exit', (code) => (exitCode = code));
    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
      const stop = page.getByRole('button', { name: /^Stop the send-back of every error code started / });
      // The page reads the send-backs again every few seconds: the shell's run appears by itself.
      await stop.waitFor({ timeout: 30_000 });
      const runRow = page.getByRole('table', { name: 'Send-backs' }).locator('tbody tr').first();
      expect(await runRow.locator('td').nth(1).innerText()).toBe('tally redrive (shell)');
      await stop.focus();
      await page.keyboard.press('Enter');
      const exited = await waitCuttingConnections(
        proxy,
        () => (exitCode === undefined ? undefined : { exitCode }),
        { description: 'tally redrive to exit', timeoutMs: 60_000, intervalMs: 500 },
      );
      expect(exited.exitCode).toBe(1);
      expect(stderr).toMatch(/send-back \S+ stopped by operator from the console or the API/);
      await waitFor(async () => ((await runRow.locator('td').nth(4).innerText({ timeout: 1000 })) === 'Stopped by operator' ? true : undefined), {
        description: 'the row to say the run stopped',
        timeoutMs: 30_000,
      });
    } finally {
      if (exitCode === undefined) command.kill('SIGKILL');
      await context.close();
    }
  });
});
