import type { EventStore, RecordedEvent } from '@tally/event-store';
import { retry } from '@tally/runtime';
import type { Logger } from 'pino';
import { prepareLedgerBatch, writePreparedBatch } from './applyLedgerBatch';
import type { GenerationStore, WriteOutcome } from './generationStore';
import type { SnapshotCache } from './snapshotCache';

interface RebuildOptions {
  readonly eventStore: EventStore;
  readonly store: GenerationStore;
  readonly logger: Logger;
  /** An aside generation whose checkpoint is `after`. */
  readonly generation: string;
  /** Created empty with the generation and kept across calls for it. */
  readonly cache: SnapshotCache;
  readonly batchSize: number;
  /** Where the generation stands: 0n for a fresh one. */
  readonly after: bigint;
  /** Stop after this position (inclusive); by default, at the head as it is when a read comes back empty. */
  readonly until?: bigint;
  /** Called after every written batch with its last position and how many events it held. */
  readonly onBatch?: (position: bigint, events: number) => void;
}

interface RebuildResult {
  /** 'reset' when the generation's keys vanished under the rebuild. */
  readonly outcome: WriteOutcome;
  /** The position written up to. */
  readonly position: bigint;
}

/** A replay is run by hand: give up after about half a minute rather than hang. */
const MAX_ATTEMPTS = 10;

/** Awaited later; until then a failure must not count as an unhandled rejection. */
function inFlight<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Folds the log into an aside generation as a three-stage pipeline: while batch n is folded,
 * page n+1 is being read from the event store and batch n-1 written by Redis, so the rebuild
 * runs at the pace of its slowest stage rather than at the sum of all three. Writes stay in
 * order: one is sent only after the previous one has landed.
 */
export async function rebuildGeneration(options: RebuildOptions): Promise<RebuildResult> {
  const { eventStore, store, logger, generation, batchSize, until, cache } = options;
  const target = { eventStore, store, logger, generation, mode: 'aside' as const, cache };
  const retrying = { logger, maxAttempts: MAX_ATTEMPTS };
  const read = (after: bigint): Promise<readonly RecordedEvent[]> =>
    inFlight(retry(() => eventStore.readAll({ after, maxCount: batchSize }), { ...retrying, what: 'reading the event store' }));

  let position = options.after;
  let writing: { outcome: Promise<WriteOutcome>; position: bigint; events: number } | undefined;
  /** Waits for the write in flight; its outcome, 'ok' when there is none. */
  const landed = async (): Promise<WriteOutcome> => {
    if (writing === undefined) return 'ok';
    const { outcome, position: written, events } = writing;
    writing = undefined;
    const result = await outcome;
    if (result === 'ok') {
      position = written;
      options.onBatch?.(written, events);
    }
    return result;
  };

  if (until !== undefined && position >= until) return { outcome: 'ok', position };
  let next: Promise<readonly RecordedEvent[]> | undefined = read(position);
  while (next !== undefined) {
    const page: readonly RecordedEvent[] = await next;
    const events = until === undefined ? page : page.filter((event) => event.position <= until);
    const last = events[events.length - 1];
    if (last === undefined) break;
    next = until !== undefined && last.position >= until ? undefined : read(last.position);
    const prepared = await retry(() => prepareLedgerBatch(target, events), { ...retrying, what: 'folding a rebuilt batch' });
    const outcome = await landed();
    if (outcome !== 'ok') return { outcome, position };
    if (typeof prepared === 'string') return { outcome: prepared, position };
    writing = {
      outcome: inFlight(retry(() => writePreparedBatch(target, prepared), { ...retrying, what: 'writing a rebuilt batch' })),
      position: prepared.checkpoint,
      events: events.length,
    };
  }
  return { outcome: await landed(), position };
}
