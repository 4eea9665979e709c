import { TallyError } from '@tally/domain';
import type { BalanceReadModel } from '@tally/projections';
import { guardTransient } from '@tally/runtime';

/** Redis could not answer (down, restarting, out of retries); the same read can succeed later. */
export class ReadModelUnavailableError extends TallyError {
  readonly code = 'read_model_unavailable';
  readonly retriable = true;
}

/**
 * The read model's client throws its own errors (ioredis's connection and retry errors); a
 * failed read is an unavailable dependency, answered 503 like the other stores, not a bug
 * answered 500.
 */
export function guardBalanceReader(reader: BalanceReadModel): BalanceReadModel {
  const guarded = guardTransient(
    (error) => !(error instanceof TallyError),
    (cause) => new ReadModelUnavailableError('the balance read model is unavailable', { cause }),
  );
  return {
    getBalance: (balanceId) => guarded(() => reader.getBalance(balanceId)),
    getCustomerBalances: (customerId) => guarded(() => reader.getCustomerBalances(customerId)),
    getEntitlement: (customerId, productId) => guarded(() => reader.getEntitlement(customerId, productId)),
    servedCheckpoint: () => guarded(() => reader.servedCheckpoint()),
  };
}
