import type { EventStore } from '@tally/event-store';
import type { Histogram } from '@tally/metrics';

/** The event store with every append timed into a histogram: append latency is a headline metric. */
export function instrumentedEventStore(eventStore: EventStore, appendSeconds: Histogram<'operation'>): EventStore {
  async function timed<T>(operation: string, work: () => Promise<T>): Promise<T> {
    // The label is bound when the timer starts; a failed append is timed too.
    const end = appendSeconds.startTimer({ operation });
    try {
      return await work();
    } finally {
      end();
    }
  }
  return {
    ...eventStore,
    appendToStream: (streamId, events, options) => timed('append', () => eventStore.appendToStream(streamId, events, options)),
    // Every argument passed on: the markers given with an append are part of its transaction.
    appendMany: (requests, options) => timed('append_many', () => eventStore.appendMany(requests, options)),
    // Includes the tail read and the decision it holds the other appends back for.
    appendExclusively: (work, options) => timed('append_exclusively', () => eventStore.appendExclusively(work, options)),
  };
}
