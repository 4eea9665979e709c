import type { EventStore, StoredPayload } from '@tally/event-store';
import { retry } from '@tally/runtime';
import type { Logger } from 'pino';
import { prepareLedgerBatch, writePreparedBatch, type PreparedBatch } from './applyLedgerBatch';
import type { GenerationStore, WriteOutcome } from './generationStore';
import type { PositionedBalance } from './positionedBalance';
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
  /** Called after every write that landed, with its last position and how many events it covered. */
  readonly onBatch?: (position: bigint, events: number) => void;
  /** Stops the rebuild between pages (Ctrl-C): the write in flight lands first, then it throws the signal's reason. */
  readonly signal?: AbortSignal;
}

interface RebuildResult {
  /** 'reset' when the generation's keys vanished under the rebuild. */
  readonly outcome: WriteOutcome;
  /** The position written up to. */
  readonly position: bigint;
  /**
   * Epoch ms when the read that found the rebuild at the head (it came back empty) began: the
   * generation holds every event recorded before then. Undefined when it stopped at `until` or
   * on another outcome than 'ok'.
   */
  readonly atHeadAsOf?: number;
}

/** A replay is run by hand: give up after about half a minute rather than hang. */
const MAX_ATTEMPTS = 10;

/**
 * Events folded in memory, at most, before the balances they changed are written. A balance
 * met in every page was written once per page, which made a rebuild write about one snapshot
 * per event; folded over this many events it is written once for all of them. Progress is
 * reported at least this often.
 */
export const WRITE_EVERY_EVENTS = 100_000;

/** Awaited later; until then a failure must not count as an unhandled rejection. */
function inFlight<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * Folds the log into an aside generation as a three-stage pipeline: while pages are folded, the
 * next page is being read from the event store and the balances folded before are written by
 * Redis, so the rebuild runs at the pace of its slowest stage rather than at the sum of all
 * three. The fold runs ahead of the writes in memory: each balance a page changes is written
 * once, at its latest fold, when WRITE_EVERY_EVENTS events were folded, when the cache could
 * otherwise push one of them out, or at the end. Writes stay in order: one is sent only after
 * the previous one has landed, and the checkpoint moves with the last script of a write, once
 * every snapshot it covers is in.
 */
export async function rebuildGeneration(options: RebuildOptions): Promise<RebuildResult> {
  const { eventStore, store, logger, generation, batchSize, until, cache } = options;
  const target = { eventStore, store, logger, generation, mode: 'aside' as const, cache };
  const retrying = { logger, maxAttempts: MAX_ATTEMPTS };
  // Payloads only: the fold looks at nothing else, and a rebuild reads every event of the log.
  // Each read's start is kept with it: the one that comes back empty dates the generation's freshness.
  type Page = { payloads: readonly StoredPayload[]; startedAt: number };
  const read = (after: bigint): Promise<Page> => {
    const startedAt = Date.now();
    return inFlight(retry(() => eventStore.readAllPayloads({ after, maxCount: batchSize }), { ...retrying, what: 'reading the event store' }).then((payloads) => ({ payloads, startedAt })));
  };

  /** One write in scripts of batchSize snapshots (a script blocks Redis while it runs); only the last one moves the checkpoint. */
  const write = async (balances: readonly PositionedBalance[], from: bigint, checkpoint: bigint): Promise<WriteOutcome> => {
    for (let start = 0; ; start += batchSize) {
      const last = start + batchSize >= balances.length;
      const prepared: PreparedBatch = { changed: balances.slice(start, start + batchSize), checkpoint: last ? checkpoint : from };
      const outcome = await retry(() => writePreparedBatch(target, prepared), { ...retrying, what: 'writing a rebuilt batch' });
      if (outcome !== 'ok' || last) return outcome;
    }
  };

  let position = options.after;
  let writing: { outcome: Promise<WriteOutcome>; position: bigint; events: number; balances: number } | undefined;
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

  // Folded since the last write, each balance at its latest fold (the same objects the cache holds).
  let pending = new Map<string, PositionedBalance>();
  let pendingEvents = 0;
  let pendingCheckpoint = position;
  const startWrite = async (): Promise<WriteOutcome> => {
    const outcome = await landed();
    if (outcome !== 'ok') return outcome;
    const balances = [...pending.values()];
    writing = { outcome: inFlight(write(balances, position, pendingCheckpoint)), position: pendingCheckpoint, events: pendingEvents, balances: balances.length };
    pending = new Map();
    pendingEvents = 0;
    return 'ok';
  };

  if (until !== undefined && position >= until) return { outcome: 'ok', position };
  let next: Promise<Page> | undefined = read(position);
  let atHeadAsOf: number | undefined;
  while (next !== undefined) {
    if (options.signal?.aborted === true) {
      // Landed before the caller deletes the generation, so that no script writes into it after.
      next.catch(() => undefined);
      await landed();
      options.signal.throwIfAborted();
    }
    const fetched: Page = await next;
    const page: readonly StoredPayload[] = fetched.payloads;
    const events = until === undefined ? page : page.filter((event) => event.position <= until);
    const last = events[events.length - 1];
    if (last === undefined) {
      if (page.length === 0) atHeadAsOf = fetched.startedAt;
      break;
    }
    next = until !== undefined && last.position >= until ? undefined : read(last.position);
    // A balance the cache dropped is read back from Redis, which must then hold its latest fold:
    // so what is folded but not yet written (pending, and a write of several scripts still in
    // flight) stays within the cache, the balances folded last being the ones it keeps.
    if (writing !== undefined && writing.balances + pending.size + batchSize > cache.capacity) {
      const outcome = await landed();
      if (outcome !== 'ok') return { outcome, position };
    }
    const prepared = await retry(() => prepareLedgerBatch(target, events), { ...retrying, what: 'folding a rebuilt batch' });
    if (typeof prepared === 'string') {
      const outcome = await landed();
      return { outcome: outcome === 'ok' ? prepared : outcome, position };
    }
    for (const folded of prepared.changed) pending.set(folded.state.balanceId, folded);
    pendingEvents += events.length;
    pendingCheckpoint = prepared.checkpoint;
    if (pending.size + batchSize > cache.capacity || pendingEvents >= WRITE_EVERY_EVENTS) {
      const outcome = await startWrite();
      if (outcome !== 'ok') return { outcome, position };
    }
  }
  if (pendingEvents > 0) {
    const outcome = await startWrite();
    if (outcome !== 'ok') return { outcome, position };
  }
  const outcome = await landed();
  return { outcome, position, ...(outcome === 'ok' && atHeadAsOf !== undefined ? { atHeadAsOf } : {}) };
}
