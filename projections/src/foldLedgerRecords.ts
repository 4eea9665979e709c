import { BalanceState, evolve } from '@tally/domain';
import type { PositionedBalance } from './positionedBalance';
import { UnfoldableLedgerEventError, type LedgerRecord } from './ledgerRecord';

export type FoldResult =
  /** Every record is at or below the base's position: applying them again changes nothing. */
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'changed'; readonly folded: PositionedBalance }
  /** The records do not continue the base (a stream revision is missing between them): fold the whole stream again. */
  | { readonly kind: 'gap' };

/**
 * Folds a balance's records (position order) onto what a snapshot already holds (undefined:
 * nothing yet). Records at or below its position are skipped, which makes re-delivery after
 * a crash harmless. The rest must continue the stream exactly (revision = base's + 1, and so
 * on), so a lost or stale snapshot is never silently folded forward.
 */
export function foldLedgerRecords(base: PositionedBalance | undefined, records: readonly LedgerRecord[]): FoldResult {
  let state: BalanceState = base?.state ?? { status: 'unopened' };
  let nextRevision = base === undefined ? 0n : base.revision + 1n;
  const position = base?.position ?? -1n;
  let last: LedgerRecord | undefined;
  for (const record of records) {
    if (record.position <= position) continue;
    if (record.revision !== nextRevision) return { kind: 'gap' };
    try {
      state = evolve(state, record.event);
    } catch (error) {
      throw new UnfoldableLedgerEventError(record.balanceId, { ...record, type: record.event.type }, 'folded', error);
    }
    nextRevision += 1n;
    last = record;
  }
  if (last === undefined) return { kind: 'unchanged' };
  if (state.status !== 'open') throw new Error(`balance ${last.balanceId}: events folded to an unopened balance`);
  return { kind: 'changed', folded: { state, revision: last.revision, position: last.position } };
}
