import { TallyError } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { BalanceReadModel } from '@tally/projections';

/** The read model did not reach the event store's head in time; a retry may find it there. */
export class NotConsistentError extends TallyError {
  readonly code = 'not_consistent';
  readonly retriable = true;
}

interface ConsistencyOptions {
  readonly balances: Pick<BalanceReadModel, 'checkpoint'>;
  readonly eventStore: Pick<EventStore, 'headPosition'>;
  readonly timeoutMs: number;
  readonly pollIntervalMs: number;
}

/**
 * For `?consistent=true`: waits until the read model's checkpoint has reached the event store's
 * head as it was when the request came in, so the read sees every write acknowledged before it.
 * Later writes need not be waited for, which keeps the wait bounded under constant traffic.
 */
export async function waitForConsistency(options: ConsistencyOptions): Promise<void> {
  const target = await options.eventStore.headPosition();
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const checkpoint = await options.balances.checkpoint();
    if (checkpoint >= target) return;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new NotConsistentError(
        `the balance read model is at position ${checkpoint}, behind the event store's ${target}, after ${options.timeoutMs} ms; retry later`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.pollIntervalMs, left)));
  }
}
