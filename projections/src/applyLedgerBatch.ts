import type { EventStore, StoredPayload } from '@tally/event-store';
import type { Logger } from 'pino';
import { PositionedBalance, foldedFromSnapshot, snapshotOf } from './positionedBalance';
import { foldBalanceStreams } from './foldBalanceStreams';
import { foldLedgerRecords } from './foldLedgerRecords';
import type { GenerationStore, WriteMode, WriteOutcome } from './generationStore';
import { groupByBalance } from './ledgerRecord';
import type { SnapshotCache } from './snapshotCache';

interface BatchTarget {
  readonly eventStore: EventStore;
  readonly store: GenerationStore;
  readonly logger: Logger;
  readonly generation: string;
  readonly mode: WriteMode;
  /** Balances this writer folded (snapshotCache.ts says when a hit, and a miss, is sound). */
  readonly cache?: SnapshotCache;
  /**
   * The position this writer last wrote to the generation: a stored checkpoint below it means
   * Redis was rolled back, and the batch is refused ('rewound') rather than written over the gap.
   */
  readonly written?: bigint;
}

/** What each balance's snapshot holds, or 'unreadable' for a snapshot that does not parse. */
async function storedBalances(target: BatchTarget, balanceIds: readonly string[]): Promise<Map<string, PositionedBalance | undefined | 'unreadable'>> {
  const { cache } = target;
  const stored = new Map<string, PositionedBalance | undefined | 'unreadable'>();
  const unknown: string[] = [];
  for (const balanceId of balanceIds) {
    const cached = cache?.get(balanceId);
    if (cached !== undefined || cache?.complete) stored.set(balanceId, cached);
    else unknown.push(balanceId);
  }
  if (unknown.length > 0) {
    for (const [balanceId, snapshot] of await target.store.readSnapshots(target.generation, unknown)) {
      stored.set(balanceId, snapshot === undefined ? undefined : (foldedFromSnapshot(snapshot) ?? 'unreadable'));
    }
  }
  return stored;
}

export interface PreparedBatch {
  /** The balances the batch changed, folded; formatted into snapshots only when written. */
  readonly changed: readonly PositionedBalance[];
  /** The batch's last position: where the checkpoint moves once the snapshots are written. */
  readonly checkpoint: bigint;
}

/**
 * Reads what the touched balances hold (one script; nothing for those in the cache) and
 * folds the batch onto it. Folding is safe to repeat: events already in a snapshot are
 * skipped. 'stale' or 'reset' when a snapshot had to be rebuilt and the generation turned
 * out to be gone or replaced.
 */
export async function prepareLedgerBatch(target: BatchTarget, events: readonly StoredPayload[]): Promise<PreparedBatch | Exclude<WriteOutcome, 'ok'>> {
  const last = events[events.length - 1];
  if (last === undefined) throw new Error('a batch holds at least one event');
  const { store, generation, mode } = target;
  const byBalance = groupByBalance(events);
  const stored = await storedBalances(target, [...byBalance.keys()]);
  const changed: PositionedBalance[] = [];
  const gaps: string[] = [];
  for (const [balanceId, records] of byBalance) {
    const base = stored.get(balanceId);
    const result = base === 'unreadable' ? ({ kind: 'gap' } as const) : foldLedgerRecords(base, records);
    if (result.kind === 'changed') changed.push(result.folded);
    else if (result.kind === 'gap') gaps.push(balanceId);
  }
  if (gaps.length > 0) {
    // Missing snapshots are most often a flushed Redis: find out before reading streams for nothing.
    const outcome = await store.checkGeneration(generation, mode, target.written);
    if (outcome !== 'ok') return outcome;
    target.logger.warn(
      { generation, balances: gaps.length, sample: gaps.slice(0, 10) },
      'snapshots missing, unreadable or not continuing their stream: folding them again from their streams',
    );
    const healed = await foldBalanceStreams(target.eventStore, new Map(gaps.map((balanceId) => [balanceId, last.position])));
    for (const folded of healed.values()) if (folded !== undefined) changed.push(folded);
  }
  for (const folded of changed) target.cache?.set(folded);
  return { changed, checkpoint: last.position };
}

/** One script: the snapshots whose position is above the stored one, then the checkpoint. Safe to repeat. */
export function writePreparedBatch(target: BatchTarget, prepared: PreparedBatch): Promise<WriteOutcome> {
  return target.store.writeBatch(target.generation, target.mode, prepared.changed.map(snapshotOf), prepared.checkpoint, target.written);
}
