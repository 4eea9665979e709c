import type { Histogram } from '@tally/api';
import type { EventStore } from '@tally/event-store';

/** The event store with every append timed into a histogram: append latency is a headline metric. */
export function instrumentedEventStore(eventStore: EventStore, appendSeconds: Histogram): EventStore {
  async function timed<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      return await work();
    } finally {
      appendSeconds.observe({ operation }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }
  return {
    ...eventStore,
    appendToStream: (streamId, events, options) => timed('append', () => eventStore.appendToStream(streamId, events, options)),
    appendMany: (requests) => timed('append_many', () => eventStore.appendMany(requests)),
    // Includes the tail read and the decision it holds the other appends back for.
    appendExclusively: (work) => timed('append_exclusively', () => eventStore.appendExclusively(work)),
  };
}
