import type { EventStore, RecordedEvent } from '@tally/event-store';
import type { Logger } from 'pino';
import type { BalanceSnapshot } from './balanceSnapshot';
import { foldBalanceSnapshot } from './foldBalanceSnapshot';
import { foldBalanceStreams } from './foldBalanceStreams';
import type { GenerationStore, WriteMode, WriteOutcome } from './generationStore';
import { groupByBalance } from './ledgerRecord';

export interface BatchTarget {
  readonly eventStore: EventStore;
  readonly store: GenerationStore;
  readonly logger: Logger;
  readonly generation: string;
  readonly mode: WriteMode;
}

/**
 * Applies a batch of consecutive events (any streams) to a generation in two Redis round
 * trips: one pipelined HGETALL of the touched balances, one script that writes the folded
 * snapshots and moves the checkpoint to the batch's last position. Safe to repeat: events
 * already in a snapshot are skipped by the fold, and the script keeps the higher position.
 */
export async function applyLedgerBatch(target: BatchTarget, events: readonly RecordedEvent[]): Promise<WriteOutcome> {
  const last = events[events.length - 1];
  if (last === undefined) return 'ok';
  const { store, generation, mode } = target;
  const byBalance = groupByBalance(events);
  const stored =
    byBalance.size === 0 ? new Map<string, BalanceSnapshot | undefined>() : await store.readSnapshots(generation, [...byBalance.keys()]);
  const changed: BalanceSnapshot[] = [];
  const gaps: string[] = [];
  for (const [balanceId, records] of byBalance) {
    const result = foldBalanceSnapshot(stored.get(balanceId), records);
    if (result.kind === 'changed') changed.push(result.snapshot);
    else if (result.kind === 'gap') gaps.push(balanceId);
  }
  if (gaps.length > 0) {
    // Missing snapshots are most often a flushed Redis: find out before reading streams for nothing.
    const outcome = await store.checkGeneration(generation, mode);
    if (outcome !== 'ok') return outcome;
    target.logger.warn(
      { generation, balances: gaps.length, sample: gaps.slice(0, 10) },
      'snapshots missing or not continuing their stream: folding them again from their streams',
    );
    const healed = await foldBalanceStreams(target.eventStore, new Map(gaps.map((balanceId) => [balanceId, last.position])));
    for (const snapshot of healed.values()) if (snapshot !== undefined) changed.push(snapshot);
  }
  return store.writeBatch(generation, mode, changed, last.position);
}
