import type { Pool } from 'pg';
import { ProcessorStatusUnavailableError, readProcessorStatus } from './processorStatus';

/** A pool whose every query fails as PostgreSQL (or the socket to it) would. */
function failingPool(error: Error): Pool {
  return { query: () => Promise.reject(error) } as unknown as Pool;
}

const eventStore = { headPosition: async () => 10n };

describe('readProcessorStatus', () => {
  it('turns an outage (connection refused) into ProcessorStatusUnavailableError, retriable, keeping the cause', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const failure = await readProcessorStatus(failingPool(refused), eventStore).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ProcessorStatusUnavailableError);
    expect(failure).toMatchObject({ code: 'processors_unavailable', retriable: true, cause: refused });
  });

  it.each([
    ['a missing table (42P01, a migration not run)', Object.assign(new Error('relation "subscription_checkpoints" does not exist'), { code: '42P01' })],
    ['a missing column (42703)', Object.assign(new Error('column "updated_at" does not exist'), { code: '42703' })],
    ['a bug of ours', new TypeError("Cannot read properties of undefined (reading 'rows')")],
  ])('lets %s through unchanged: a bug is not an outage', async (_what, error) => {
    await expect(readProcessorStatus(failingPool(error), eventStore)).rejects.toBe(error);
  });

  it('lets the event store’s own error through as it is', async () => {
    const down = Object.assign(new Error('the event store is unavailable'), { retriable: true });
    const pool = { query: async () => ({ rows: [] }) } as unknown as Pool;
    await expect(readProcessorStatus(pool, { headPosition: () => Promise.reject(down) })).rejects.toBe(down);
  });
});
