import type { AppendManyOptions, AppendRequest, AppendResult, EventStore } from './eventStore';

export interface GroupAppendsOptions {
  /** A group stops growing at this many events (the first call joins whatever its size). Default 10,000. */
  readonly maxEvents?: number;
}

interface Waiting {
  readonly requests: readonly AppendRequest[];
  readonly markers: readonly string[];
  readonly events: number;
  readonly resolve: (results: AppendResult[]) => void;
  readonly reject: (error: unknown) => void;
}

const DEFAULT_MAX_EVENTS = 10_000;

/**
 * Group commit for appendMany: one call in flight at a time, and the calls that arrive meanwhile
 * sent together as one appendMany when it returns. The store's appends are serialised by its
 * writers' lock anyway (the PostgreSQL store holds it to commit, so subscribers never skip a
 * position); the metering consumer's partitions each appended their chunk in a transaction of its
 * own, one after the other, and kafkajs fetched again only after the slowest. Grouped, a fetch
 * cycle's chunks cost one or two transactions.
 *
 * Each caller still gets exactly what its own appendMany would have given:
 * - A group is one transaction (appendMany is atomic), so each member's events and markers are
 *   written together or not at all, as alone.
 * - A group that fails (a conflict, a marker already recorded, a lost connection) wrote nothing, or
 *   is ambiguous exactly as a lone call is; every member is then sent again alone, so an error
 *   reaches only the caller it belongs to (WrongExpectedRevisionError, MarkerAlreadyRecordedError),
 *   and a member whose events did land is answered by the store's own idempotency (its ids, its markers).
 * - Members of one group share no stream and no marker: a second call on a stream waits for the
 *   next group, after the first, so its expected revision is checked against what the first wrote.
 */
export function groupAppends<S extends Pick<EventStore, 'appendMany'>>(store: S, options: GroupAppendsOptions = {}): S {
  const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
  if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) throw new RangeError(`maxEvents must be a positive integer; got ${maxEvents}`);
  let queue: Waiting[] = [];
  let sending = false;

  /** The longest run from the queue's head whose members share no stream or marker, within maxEvents. */
  const takeGroup = (): Waiting[] => {
    const group: Waiting[] = [];
    const streams = new Set<string>();
    const markers = new Set<string>();
    let events = 0;
    let taken = 0;
    for (const waiting of queue) {
      const clashes = waiting.requests.some((request) => streams.has(request.streamId)) || waiting.markers.some((marker) => markers.has(marker));
      if (group.length > 0 && (clashes || events + waiting.events > maxEvents)) break;
      group.push(waiting);
      for (const request of waiting.requests) streams.add(request.streamId);
      for (const marker of waiting.markers) markers.add(marker);
      events += waiting.events;
      taken += 1;
    }
    queue = queue.slice(taken);
    return group;
  };

  const alone = async (waiting: Waiting): Promise<void> => {
    try {
      waiting.resolve(await store.appendMany(waiting.requests, { markers: waiting.markers }));
    } catch (error) {
      waiting.reject(error);
    }
  };

  const send = async (group: readonly Waiting[]): Promise<void> => {
    if (group.length === 1) return alone(group[0]!);
    let results: AppendResult[];
    try {
      results = await store.appendMany(
        group.flatMap((waiting) => waiting.requests),
        { markers: group.flatMap((waiting) => waiting.markers) },
      );
    } catch {
      // Nothing of the group was written (or, ambiguously, all of it): each member alone, see above.
      await Promise.all(group.map(alone));
      return;
    }
    // appendMany answers in request order: each member takes its own requests' results.
    let offset = 0;
    for (const waiting of group) {
      waiting.resolve(results.slice(offset, offset + waiting.requests.length));
      offset += waiting.requests.length;
    }
  };

  const pump = async (): Promise<void> => {
    sending = true;
    try {
      while (queue.length > 0) await send(takeGroup());
    } finally {
      sending = false;
    }
  };

  const appendMany = (requests: readonly AppendRequest[], appendOptions: AppendManyOptions = {}): Promise<AppendResult[]> =>
    new Promise<AppendResult[]>((resolve, reject) => {
      const events = requests.reduce((n, request) => n + request.events.length, 0);
      queue.push({ requests, markers: appendOptions.markers ?? [], events, resolve, reject });
      if (!sending) void pump();
    });

  return { ...store, appendMany };
}
