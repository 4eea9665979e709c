import type { RecordedEvent } from './eventStore';
import type { SubscriptionSource } from './startSubscription';

interface ReadInFlight {
  readonly maxCount: number;
  /** How many appends had been announced when the read was sent. */
  readonly announced: number;
  readonly page: Promise<RecordedEvent[]>;
}

/**
 * One store's subscriptions are woken by the same append notification and then read the same
 * page at once (the balance projector and the consumption projection in one process, both caught
 * up): with this source they share one read, and the store pays one query, not one per
 * subscription. On a small machine each query costs a syscall and a wake-up of a backend, which
 * at low rates is most of a batch's time.
 *
 * A read joins one in flight only when it asks from the same position, for no more events, and
 * no append has been announced since that read was sent. Its page is then what a read of its own
 * would have returned, as far as the subscription can know: a page is any prefix of the log after
 * the position (the store serialises writers, so it skips nothing), and the shared read was sent
 * after every announcement that woke the joiner, so it sees what they announced. An append
 * committed but not yet announced is read at its announcement, as it would be without sharing.
 * Each caller gets its own array; the events in it are the same objects, read-only to handlers.
 */
export function sharedPageReads(source: SubscriptionSource): SubscriptionSource {
  let announced = 0;
  // Registered before any subscription's wake-up, so it counts an announcement before they act on it.
  source.onAppended(() => {
    announced += 1;
  });
  const inFlight = new Map<bigint, ReadInFlight>();

  return {
    ensureListening: () => source.ensureListening(),
    onAppended: (wake) => source.onAppended(wake),
    readAll(after, maxCount) {
      const shared = inFlight.get(after);
      if (shared !== undefined && shared.announced === announced && shared.maxCount >= maxCount) {
        return shared.page.then((events) => events.slice(0, maxCount));
      }
      const read: ReadInFlight = { maxCount, announced, page: source.readAll(after, maxCount) };
      inFlight.set(after, read);
      const settled = (): void => {
        if (inFlight.get(after) === read) inFlight.delete(after);
      };
      read.page.then(settled, settled);
      return read.page.then((events) => events.slice());
    },
  };
}
