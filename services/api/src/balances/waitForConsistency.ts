import { TallyError } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { BalanceReadModel } from '@tally/projections';

/** The read model did not reach the event store's head in time; a retry may find it there. */
export class NotConsistentError extends TallyError {
  readonly code = 'not_consistent';
  readonly retriable = true;
}

interface ConsistencyOptions {
  readonly balances: Pick<BalanceReadModel, 'servedCheckpoint'>;
  readonly eventStore: Pick<EventStore, 'headPosition'>;
  readonly timeoutMs: number;
  readonly pollIntervalMs: number;
}

/** Where a consistent read is answered from: the read model, caught up, or the event store's fold. */
export type ConsistentSource = 'readModel' | 'fold';

/**
 * For `?consistent=true`: waits until the read model's checkpoint has reached the event store's
 * head as it was when the request came in, so the read sees every write acknowledged before it.
 * Later writes need not be waited for, which keeps the wait bounded under constant traffic.
 * While the read model serves nothing (flushed, or a generation rebuilt up to its target) the
 * answer is 'fold': folded from the event store now, the read is consistent by construction,
 * where waiting for the rebuild would answer 503 for a figure at hand.
 */
export async function waitForConsistency(options: ConsistencyOptions): Promise<ConsistentSource> {
  const target = await options.eventStore.headPosition();
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const checkpoint = await options.balances.servedCheckpoint();
    if (checkpoint === undefined) return 'fold';
    if (checkpoint >= target) return 'readModel';
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new NotConsistentError(
        `the balance read model is at position ${checkpoint}, behind the event store's ${target}, after ${options.timeoutMs} ms; retry later`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.pollIntervalMs, left)));
  }
}
