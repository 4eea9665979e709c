/**
 * One metering consumer as its own process, for tests that need several group members and a
 * member that dies without warning (SIGKILL). Not part of the package's API. Run the built file:
 *   node services/metering/dist/testing/consumerProcess.js
 * configured by environment variables (all required except the tuning ones):
 *   TALLY_TEST_BROKERS, TALLY_TEST_REGISTRY_URL, TALLY_TEST_TOPIC, TALLY_TEST_DLQ_TOPIC,
 *   TALLY_TEST_GROUP, TALLY_TEST_DATABASE_URL, TALLY_TEST_DATABASE_SCHEMA,
 *   TALLY_TEST_BATCH_SIZE, TALLY_TEST_SESSION_TIMEOUT_MS, TALLY_TEST_LOG_LEVEL.
 * SIGTERM stops it the way the main job does: consumer.stop(), then exit 0.
 */
import { createCatalogCache, createPostgresCatalogStore } from '@tally/catalog';
import { createPostgresEventStore } from '@tally/event-store';
import { createPostgresBalanceRegistry, createUsageBalanceWrites } from '@tally/ledger';
import { createPool } from '@tally/postgres';
import pino from 'pino';
import { createUsageConsumer } from '../usageConsumer';

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is required`);
  return value;
}

function optionalInteger(name: string): number | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : Number(value);
}

async function main(): Promise<void> {
  const logger = pino({ name: 'consumer-process', level: process.env.TALLY_TEST_LOG_LEVEL ?? 'info' });
  const pool = createPool({
    connectionString: required('TALLY_TEST_DATABASE_URL'),
    schema: required('TALLY_TEST_DATABASE_SCHEMA'),
    applicationName: 'metering-test-consumer',
    max: 4,
    logger,
  });
  const eventStore = createPostgresEventStore({ pool, logger });
  const catalogStore = createPostgresCatalogStore({ pool, logger });
  const catalogCache = createCatalogCache({ store: catalogStore, logger, refreshIntervalMs: 500 });
  await catalogCache.start();
  const consumer = createUsageConsumer({
    kafka: { brokers: required('TALLY_TEST_BROKERS').split(','), clientId: `metering-test-${process.pid}` },
    groupId: required('TALLY_TEST_GROUP'),
    topic: required('TALLY_TEST_TOPIC'),
    dlqTopic: required('TALLY_TEST_DLQ_TOPIC'),
    registryUrl: required('TALLY_TEST_REGISTRY_URL'),
    eventStore,
    balanceWrites: createUsageBalanceWrites({ eventStore, logger }),
    balanceRegistry: createPostgresBalanceRegistry({ pool }),
    catalogCache,
    logger,
    batchSize: optionalInteger('TALLY_TEST_BATCH_SIZE'),
    sessionTimeoutMs: optionalInteger('TALLY_TEST_SESSION_TIMEOUT_MS'),
  });

  process.once('SIGTERM', () => {
    void (async () => {
      await consumer.stop();
      catalogCache.stop();
      await eventStore.close();
      await pool.end();
      logger.info({ counters: consumer.counters() }, 'consumer process exiting');
      process.exit(0);
    })().catch((error: unknown) => {
      logger.fatal({ err: error }, 'consumer process failed to stop');
      process.exit(1);
    });
  });
  await consumer.start();
}

main().catch((error: unknown) => {
  // pino may not exist yet (bad configuration): the plain console is the only safe channel here.
  console.error(error);
  process.exit(1);
});
