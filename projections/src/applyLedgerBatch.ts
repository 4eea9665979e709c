import type { EventStore, RecordedEvent } from '@tally/event-store';
import type { Logger } from 'pino';
import { FoldedBalance, foldedFromSnapshot, snapshotOf } from './foldedBalance';
import { foldBalanceStreams } from './foldBalanceStreams';
import { foldLedgerRecords } from './foldLedgerRecords';
import type { GenerationStore, WriteMode, WriteOutcome } from './generationStore';
import { groupByBalance } from './ledgerRecord';
import type { SnapshotCache } from './snapshotCache';

export interface BatchTarget {
  readonly eventStore: EventStore;
  readonly store: GenerationStore;
  readonly logger: Logger;
  readonly generation: string;
  readonly mode: WriteMode;
  /** Only for an aside generation this process alone writes, created empty with it. */
  readonly cache?: SnapshotCache;
}

/** What each balance's snapshot holds, or 'unreadable' for a snapshot that does not parse. */
async function storedBalances(target: BatchTarget, balanceIds: readonly string[]): Promise<Map<string, FoldedBalance | undefined | 'unreadable'>> {
  const { cache } = target;
  const stored = new Map<string, FoldedBalance | undefined | 'unreadable'>();
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

/**
 * Applies a batch of consecutive events (any streams) to a generation in two Redis round
 * trips: one script that reads the touched balances (none for those in the cache), one that
 * writes the folded snapshots and moves the checkpoint to the batch's last position. Safe to
 * repeat: events already in a snapshot are skipped by the fold, and the script keeps the
 * higher position.
 */
export async function applyLedgerBatch(target: BatchTarget, events: readonly RecordedEvent[]): Promise<WriteOutcome> {
  const last = events[events.length - 1];
  if (last === undefined) return 'ok';
  const { store, generation, mode } = target;
  const byBalance = groupByBalance(events);
  const stored = await storedBalances(target, [...byBalance.keys()]);
  const changed: FoldedBalance[] = [];
  const gaps: string[] = [];
  for (const [balanceId, records] of byBalance) {
    const base = stored.get(balanceId);
    const result = base === 'unreadable' ? ({ kind: 'gap' } as const) : foldLedgerRecords(base, records);
    if (result.kind === 'changed') changed.push(result.folded);
    else if (result.kind === 'gap') gaps.push(balanceId);
  }
  if (gaps.length > 0) {
    // Missing snapshots are most often a flushed Redis: find out before reading streams for nothing.
    const outcome = await store.checkGeneration(generation, mode);
    if (outcome !== 'ok') return outcome;
    target.logger.warn(
      { generation, balances: gaps.length, sample: gaps.slice(0, 10) },
      'snapshots missing, unreadable or not continuing their stream: folding them again from their streams',
    );
    const healed = await foldBalanceStreams(target.eventStore, new Map(gaps.map((balanceId) => [balanceId, last.position])));
    for (const folded of healed.values()) if (folded !== undefined) changed.push(folded);
  }
  const outcome = await store.writeBatch(generation, mode, changed.map(snapshotOf), last.position);
  if (outcome === 'ok') for (const folded of changed) target.cache?.set(folded);
  return outcome;
}
