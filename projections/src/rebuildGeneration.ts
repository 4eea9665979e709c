import type { EventStore, RecordedEvent } from '@tally/event-store';
import type { Logger } from 'pino';
import { applyLedgerBatch } from './applyLedgerBatch';
import type { GenerationStore, WriteOutcome } from './generationStore';
import { retryWithBackoff } from './retryWithBackoff';
import type { SnapshotCache } from './snapshotCache';

export interface RebuildOptions {
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

export interface RebuildResult {
  /** 'reset' when the generation's keys vanished under the rebuild. */
  readonly outcome: WriteOutcome;
  /** The position written up to. */
  readonly position: bigint;
}

/** A replay is run by hand: give up after about half a minute rather than hang. */
const MAX_ATTEMPTS = 10;

/**
 * Folds the log into an aside generation. The next page is read while the current one is
 * written, so the rebuild runs at the pace of the slower of the two, not their sum.
 */
export async function rebuildGeneration(options: RebuildOptions): Promise<RebuildResult> {
  const { eventStore, store, logger, generation, batchSize, until, cache } = options;
  const target = { eventStore, store, logger, generation, mode: 'aside' as const, cache };
  const read = (after: bigint): Promise<readonly RecordedEvent[]> => {
    const page = retryWithBackoff(() => eventStore.readAll({ after, maxCount: batchSize }), {
      logger,
      what: 'read the event store',
      maxAttempts: MAX_ATTEMPTS,
    });
    // Awaited later; until then a failure must not count as an unhandled rejection.
    page.catch(() => undefined);
    return page;
  };
  let position = options.after;
  if (until !== undefined && position >= until) return { outcome: 'ok', position };
  let next = read(position);
  for (;;) {
    const page = await next;
    const events = until === undefined ? page : page.filter((event) => event.position <= until);
    const last = events[events.length - 1];
    if (last === undefined) return { outcome: 'ok', position };
    const done = until !== undefined && last.position >= until;
    if (!done) next = read(last.position);
    const outcome = await retryWithBackoff(() => applyLedgerBatch(target, events), {
      logger,
      what: 'write a rebuilt batch',
      maxAttempts: MAX_ATTEMPTS,
    });
    if (outcome !== 'ok') return { outcome, position };
    position = last.position;
    options.onBatch?.(position, events.length);
    if (done) return { outcome: 'ok', position };
  }
}
