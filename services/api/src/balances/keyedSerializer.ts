import { TallyError } from '@tally/domain';

/** Too many writes are already waiting for this key; the client may retry later. */
export class WriteQueueFullError extends TallyError {
  readonly code = 'too_many_pending_writes';
  readonly retriable = true;
}

export interface KeyedSerializer {
  /** Runs `task` after every task queued earlier under the same key has settled. */
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
}

/**
 * Queues this process's writes to one balance behind each other. The ledger's optimistic
 * concurrency keeps writes from several processes exact, but among N writers racing for one
 * stream only one wins each round, so a burst of 100 requests on one balance would cost
 * O(N²) attempts and exhaust the retry budget. Queued, each request appends at its first
 * attempt unless another process writes in between, which the retry then absorbs.
 */
export function createKeyedSerializer({ maxPending }: { maxPending: number }): KeyedSerializer {
  const queues = new Map<string, { tail: Promise<unknown>; pending: number }>();

  return {
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const queue = queues.get(key) ?? { tail: Promise.resolve(), pending: 0 };
      if (queue.pending >= maxPending) {
        return Promise.reject(new WriteQueueFullError(`${maxPending} writes are already waiting for "${key}"; retry later`));
      }
      queue.pending += 1;
      queues.set(key, queue);
      const result = queue.tail.then(task);
      queue.tail = result
        .catch(() => undefined)
        .finally(() => {
          queue.pending -= 1;
          // The last one out removes the queue, so the map holds only keys with writes in flight.
          if (queue.pending === 0) queues.delete(key);
        });
      return result;
    },
  };
}
