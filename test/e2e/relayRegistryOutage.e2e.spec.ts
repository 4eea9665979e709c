import { createPostgresCatalogStore } from '@tally/catalog';
import { MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore } from '@tally/event-store';
import { createLedgerService, createPostgresBalanceRegistry } from '@tally/ledger';
import { startWholeMainJob, waitFor, type WholeMainJob } from '@tally/test-support';
import pino from 'pino';

/**
 * A schema registry that is down when the main job boots holds back only the relay: it registers
 * the ledger schema in the background, retrying, while the API (its /health among it) serves, so
 * a liveness probe does not restart the process for the registry's outage.
 */
jest.setTimeout(120_000);

describe('the main job with the relay and the API while the schema registry is unreachable', () => {
  let job: WholeMainJob | undefined;

  afterAll(async () => {
    await job?.stop();
  });

  it('starts, answers /health (down: the registry is), retries the registration, and stops on SIGTERM', async () => {
    job = await startWholeMainJob({
      prefix: 'relay_registry_down',
      apiKey: 'relay-registry-outage-test-key',
      env: { TALLY_ROLES: 'relay,api', TALLY_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1/apis/ccompat/v7' },
    });
    const response = await fetch(`${job.base}/health`);
    expect(response.status).toBe(503);
    // Unauthenticated, /health tells no detail: down (503), as its registry is, but it answers.
    expect(await response.json()).toEqual({ status: 'down' });
    // A ledger event for the relay to publish: it registers the schema before its first send.
    const logger = pino({ level: 'silent' });
    const eventStore = createPostgresEventStore({ pool: job.db.pool, logger });
    const catalog = createPostgresCatalogStore({ pool: job.db.pool, logger });
    const credits = 10n * MICROS_PER_CREDIT;
    await catalog.createProduct({ id: 'api-credits', name: 'API credits', description: '', consumption: [], lowBalanceThreshold: null, bundles: [] });
    const ledger = createLedgerService({ eventStore, catalog, balanceRegistry: createPostgresBalanceRegistry({ pool: job.db.pool }), logger });
    await ledger.openBalance({ customerId: 'acme', productId: 'api-credits', startingBalance: credits });
    await waitFor(() => job!.tally.lines.some((line) => line.includes('registering the ledger event schema failed; retrying')), {
      description: 'the relay retrying the registration in the background',
    });
    expect(await job.tally.kill('SIGTERM')).toBe(0);
    await eventStore.close();
  });
});
