import { randomUUID } from 'node:crypto';
import { corruptGzipBatch, createTestKafka, stackConfig, startKafkaProxy, waitCuttingConnections, type KafkaProxy } from '@tally/test-support';
import { CompressionTypes, type Admin } from 'kafkajs';
import { photograph, startConsoleStack, type ConsoleStack } from './startConsoleStack';

jest.setTimeout(180_000);

/** Kafka's Fetch request's API key. */
const FETCH = 1;

/**
 * The console's Status page in Chromium against the real main job (API and consumer in one
 * process), whose consumer meets a record batch broken on the broker's disk: the page says the
 * process is down, which partition waits where, and the command that moves past it. The process
 * reaches Kafka through a proxy that holds its fetches while the batch is written and broken, or
 * its consumer, running from the start, would read the batch whole first.
 */
describe("the console's Status page", () => {
  let proxy: KafkaProxy;
  let stack: ConsoleStack;
  let admin: Admin;

  beforeAll(async () => {
    proxy = await startKafkaProxy(stackConfig.kafkaBrokers[0]!);
    stack = await startConsoleStack({ prefix: 'browser_status', roles: 'api,consumer', adminKey: `browser-admin-${randomUUID()}`, kafkaBroker: proxy.broker });
    admin = createTestKafka('browser-status').admin();
    await admin.connect();
  });

  afterAll(async () => {
    proxy?.swallow([]);
    await admin?.disconnect();
    await stack?.close();
    await proxy?.close();
  });

  it('shows a stalled usage partition with the batch, the reason and the skip-batch command', async () => {
    // Offsets 0..1: one gzip batch, broken on disk before the consumer can fetch it.
    proxy.swallow([FETCH]);
    // A fetch already waiting at the broker would answer with the batch whole: its connection goes.
    proxy.down();
    proxy.resume();
    const usage = (id: string) => JSON.stringify({ id, customerId: 'ida', event: 'api_call', timestamp: Date.UTC(2026, 2, 1) });
    await stack.producer.send({ topic: stack.usageTopic, acks: -1, compression: CompressionTypes.GZIP, messages: [{ partition: 0, key: 'ida', value: usage('i1') }, { partition: 0, key: 'ida', value: usage('i2') }] });
    await corruptGzipBatch(admin, stack.usageTopic, 0, 0n);

    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await stack.signIn(page);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Status' }).click();
    const stalled = page.getByRole('table', { name: 'Stalled usage partitions' });
    // Read again every five seconds: the page shows the stall once the consumer has met it.
    // Fetches flow again; the one held ends once its connection is cut, and the next meets the broken batch.
    proxy.swallow([]);
    await waitCuttingConnections(proxy, async () => ((await stalled.count()) === 1 ? true : undefined), { description: 'the stalled partition on the page', timeoutMs: 60_000, intervalMs: 1000 });
    expect(await page.getByRole('status').filter({ hasText: 'a check fails' }).innerText()).toMatch(/^Down: a check fails\. Checked /);
    const checks = await page.getByRole('table', { name: 'Checks' }).locator('tbody tr').allTextContents();
    expect(checks).toEqual(['PostgreSQLUp', 'RedisUp', 'KafkaUp', 'Schema registryUp', 'Usage partitions (metering)Down']);
    const cells = await stalled.locator('tbody tr').first().locator('td').allInnerTexts();
    expect(cells.slice(0, 3)).toEqual([`${stack.usageTopic} 0`, '0..1', 'gzip']);
    expect(cells[3]).toMatch(/gzip batch could not be decompressed/);
    expect(cells[5]).toBe('npm run tally -- skip-batch --partition 0 --offset 0');
    await photograph(page, 'console-status.png', { fullPage: true });
    await context.close();
  });
});
