import { isTransientPgError } from '@tally/postgres';
import { guardTransient } from './guardTransient';

class StoreUnavailableError extends Error {
  readonly retriable = true;
}

describe('guardTransient', () => {
  const guarded = guardTransient(isTransientPgError, (cause) => new StoreUnavailableError('the store is unavailable', { cause }));

  it('turns a transient failure into the store’s unavailable error, keeping the cause', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const failure = await guarded(() => Promise.reject(refused)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect((failure as Error).cause).toBe(refused);
  });

  it('passes anything else through unchanged, and a result through', async () => {
    const unique = Object.assign(new Error('duplicate key value'), { code: '23505' });
    await expect(guarded(() => Promise.reject(unique))).rejects.toBe(unique);
    await expect(guarded(async () => 42)).resolves.toBe(42);
  });
});
