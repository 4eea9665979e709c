/**
 * Stops and starts the local stack's Kafka broker (`scripts/stack.sh kafka-stop`, `kafka-start`),
 * which every other test on the machine shares: so it is part of the fault suite
 * (`npm run test:faults`, jest.faults.config.js), which runs alone, and never of `npm test`.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@tally/test-support';
import { createLedgerRelayHarness, expectEveryEventInStreamOrder, firstDeliveries, testLogger, type LedgerRelayHarness } from './testing/ledgerRelayHarness';

jest.setTimeout(600_000);

const run = promisify(execFile);
const stackScript = path.resolve(__dirname, '../../../scripts/stack.sh');

async function stack(command: 'kafka-stop' | 'kafka-start'): Promise<void> {
  const { stdout, stderr } = await run('bash', [stackScript, command], { timeout: 300_000 });
  testLogger.info({ command, stdout, stderr }, 'stack script');
}

describe('ledger relay across a broker restart', () => {
  let harness: LedgerRelayHarness;
  let brokerStopped = false;

  beforeAll(async () => {
    harness = await createLedgerRelayHarness('ledger_relay_faults');
  });

  afterAll(async () => {
    // Whatever failed, the shared broker must come back for everyone else.
    if (brokerStopped) await stack('kafka-start');
    await harness?.close();
  });

  it('keeps every event while the broker is down, shows the lag, and publishes them all once it is back', async () => {
    const topic = await harness.createTopic(3);
    const balances = await harness.openBalances();
    await harness.driveRound(balances, 0);
    const relay = harness.createRelay(topic);
    await relay.start();
    await waitFor(() => relay.lag().events === 0, { description: 'the relay caught up before the restart', timeoutMs: 60_000 });

    brokerStopped = true;
    await stack('kafka-stop');
    // Written while the broker is down: the relay holds them and retries.
    await harness.driveRound(balances, 1);
    await waitFor(
      () => {
        const { events, seconds } = relay.lag();
        return events > 0 && seconds > 1;
      },
      { description: 'a growing lag while the broker is down', timeoutMs: 60_000 },
    );

    await stack('kafka-start');
    brokerStopped = false;
    // Written after the broker is back.
    await harness.driveRound(balances, 2);
    await waitFor(() => relay.lag().events === 0, { description: 'the relay caught up after the restart', timeoutMs: 180_000 });

    // Read back from the beginning by a consumer that never saw the outage: what the topic holds.
    const stored = await harness.storedLedgerEvents();
    const reader = await harness.consume(topic);
    await waitFor(() => firstDeliveries(reader.messages).length >= stored.length, {
      description: `${stored.length} distinct ledger events on ${topic}`,
      timeoutMs: 120_000,
    });
    expectEveryEventInStreamOrder(reader.messages, stored);
    await relay.stop();
  });
});
