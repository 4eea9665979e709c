/**
 * One webhook deliverer as its own process, for tests that kill the delivering process without
 * warning (SIGKILL) and watch another take over. Not part of the package's API. Run the built file:
 *   node services/webhooks/dist/testing/delivererProcess.js
 * configured by TALLY_TEST_DATABASE_URL, TALLY_TEST_DATABASE_SCHEMA and TALLY_TEST_WEBHOOKS_NAME
 * (required) and TALLY_TEST_LOG_LEVEL. Short retry delays, timeouts and lease polls, so a test
 * sees retries and a takeover within seconds; private networks allowed (the receiver is on
 * 127.0.0.1). SIGTERM stops it the way the main job does: deliverer.stop(), then exit 0.
 */
import { createPostgresEventStore } from '@tally/event-store';
import { createBalanceStates, createPostgresBalanceSnapshotStore } from '@tally/ledger';
import { createPool } from '@tally/postgres';
import { createPostgresCheckpointStore } from '@tally/runtime';
import pino from 'pino';
import { createPostgresWebhookStore } from '../postgresWebhookStore';
import { createWebhookDeliverer } from '../webhookDeliverer';
import { createWebhookSender } from '../webhookSender';
import { TEST_DELIVERER_TIMINGS } from './testDelivererTimings';

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const logger = pino({ name: 'webhook-deliverer-process', level: process.env.TALLY_TEST_LOG_LEVEL ?? 'info' });
  const pool = createPool({
    connectionString: required('TALLY_TEST_DATABASE_URL'),
    schema: required('TALLY_TEST_DATABASE_SCHEMA'),
    applicationName: 'webhooks-test-deliverer',
    max: 6,
    logger,
  });
  const eventStore = createPostgresEventStore({ pool, logger });
  const { send, ...timings } = TEST_DELIVERER_TIMINGS;
  const deliverer = createWebhookDeliverer({
    ...timings,
    name: required('TALLY_TEST_WEBHOOKS_NAME'),
    eventStore,
    checkpoints: createPostgresCheckpointStore(pool),
    pool,
    store: createPostgresWebhookStore(pool),
    balanceStates: createBalanceStates({ eventStore, snapshots: createPostgresBalanceSnapshotStore({ pool }), logger }),
    send: createWebhookSender({ ...send, allowPrivateNetworks: true }),
    clock: () => new Date(),
    logger,
  });

  process.once('SIGTERM', () => {
    void (async () => {
      await deliverer.stop();
      await eventStore.close();
      await pool.end();
      process.exit(0);
    })().catch((error: unknown) => {
      logger.fatal({ err: error }, 'deliverer process failed to stop');
      process.exit(1);
    });
  });
  await deliverer.start();
  // The test reads this line to know the process is up (leading or standing by).
  logger.info({ leading: deliverer.isLeading() }, 'webhook deliverer process started');
}

main().catch((error: unknown) => {
  // pino may not exist yet (bad configuration): the plain console is the only safe channel here.
  console.error(error);
  process.exit(1);
});
