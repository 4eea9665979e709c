import { startWholeMainJob, waitFor, type WholeMainJob } from '@tally/test-support';

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
    await waitFor(() => job!.tally.lines.some((line) => line.includes('registering the ledger event schema failed; retrying')), {
      description: 'the relay retrying the registration in the background',
    });
    expect(await job.tally.kill('SIGTERM')).toBe(0);
  });
});
