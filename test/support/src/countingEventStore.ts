import type { EventStore, ReadStreamOptions } from '@tally/event-store';

/** One read of a single stream, as a test asserts it: where it started, how many it asked, what came. */
export interface CountedRead {
  readonly streamId: string;
  readonly fromRevision: bigint;
  readonly maxCount: number | undefined;
  readonly events: number;
}

export interface RefusedReads {
  readonly reads: readonly ('readStreams' | 'readStreamsPaged')[];
  readonly because: string;
}

export interface CountingEventStore {
  /** The port to hand the code under test. */
  readonly store: EventStore;
  readonly reads: readonly CountedRead[];
  /** Events read, by single streams and by paged reads alike. */
  eventsRead(): number;
  pagedReads(): number;
  appends(): number;
  exclusiveAppends(): number;
}

/**
 * An event store with what one process read and appended counted: tests assert what was read,
 * never how long it took. `refuse` names reads of whole streams the code under test must never
 * make, and why: such a read then fails with that reason, where the test sees it.
 */
export function countingEventStore(inner: EventStore, options: { readonly refuse?: RefusedReads } = {}): CountingEventStore {
  const reads: CountedRead[] = [];
  let pagedReads = 0;
  let pagedEvents = 0;
  let appends = 0;
  let exclusiveAppends = 0;
  const refused = (read: RefusedReads['reads'][number]): string | undefined => (options.refuse?.reads.includes(read) ? options.refuse.because : undefined);
  const refuseWhole = refused('readStreams');
  const refusePaged = refused('readStreamsPaged');
  const store: EventStore = {
    ...inner,
    async readStream(streamId, readOptions: ReadStreamOptions = {}) {
      const events = await inner.readStream(streamId, readOptions);
      reads.push({ streamId, fromRevision: readOptions.fromRevision ?? 0n, maxCount: readOptions.maxCount, events: events.length });
      return events;
    },
    readStreams: refuseWhole === undefined ? inner.readStreams.bind(inner) : () => Promise.reject(new Error(refuseWhole)),
    readStreamsPaged(streamIds, pageOptions) {
      if (refusePaged !== undefined) throw new Error(refusePaged);
      pagedReads += 1;
      const pages = inner.readStreamsPaged(streamIds, pageOptions);
      return (async function* () {
        for await (const page of pages) {
          pagedEvents += page.length;
          yield page;
        }
      })();
    },
    async appendMany(requests, appendOptions) {
      appends += 1;
      return inner.appendMany(requests, appendOptions);
    },
    async appendExclusively(work, appendOptions) {
      appends += 1;
      exclusiveAppends += 1;
      return inner.appendExclusively(work, appendOptions);
    },
  };
  return {
    store,
    reads,
    eventsRead: () => reads.reduce((sum, read) => sum + read.events, 0) + pagedEvents,
    pagedReads: () => pagedReads,
    appends: () => appends,
    exclusiveAppends: () => exclusiveAppends,
  };
}
