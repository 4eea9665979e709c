import { BalanceState, evolve, formatCredits, OpenBalance, parseStoredCredits } from '@tally/domain';
import type { BalanceSnapshot } from './balanceSnapshot';
import type { LedgerRecord } from './ledgerRecord';

export type FoldResult =
  /** Every record is at or below the snapshot's position: applying them again changes nothing. */
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'changed'; readonly snapshot: BalanceSnapshot }
  /**
   * The records do not continue the snapshot (a stream revision is missing between them, or
   * the snapshot is unreadable): the balance must be folded again from its whole stream.
   */
  | { readonly kind: 'gap' };

const DIGITS = /^(0|[1-9]\d*)$/;

/** The domain state a snapshot stands for, or undefined when a field does not parse. */
function stateOf(snapshot: BalanceSnapshot): OpenBalance | undefined {
  if (!DIGITS.test(snapshot.revision) || !DIGITS.test(snapshot.position)) return undefined;
  try {
    return {
      status: 'open',
      balanceId: snapshot.balanceId,
      customerId: snapshot.customerId,
      productId: snapshot.productId,
      name: snapshot.name,
      balance: parseStoredCredits(snapshot.balance),
      lowBalanceThreshold: snapshot.lowBalanceThreshold === null ? null : parseStoredCredits(snapshot.lowBalanceThreshold),
      // `warned` only gates the warnings `decide` emits; a projection never decides, and no
      // snapshot field depends on it, so it need not be stored.
      warned: snapshot.belowThreshold,
      updatedAt: snapshot.updatedAt,
    };
  } catch {
    return undefined;
  }
}

function snapshotOf(state: OpenBalance, last: LedgerRecord): BalanceSnapshot {
  return {
    balanceId: state.balanceId,
    customerId: state.customerId,
    productId: state.productId,
    name: state.name,
    balance: formatCredits(state.balance),
    lowBalanceThreshold: state.lowBalanceThreshold === null ? null : formatCredits(state.lowBalanceThreshold),
    belowThreshold: state.lowBalanceThreshold !== null && state.balance < state.lowBalanceThreshold,
    revision: last.revision.toString(),
    position: last.position.toString(),
    updatedAt: state.updatedAt,
  };
}

/**
 * Folds a balance's records (position order) into its snapshot. Records at or below the
 * snapshot's position are already in it and are skipped, which makes re-delivery after a
 * crash harmless. The rest must continue the stream exactly (revision = snapshot's + 1, and
 * so on), so a lost or stale snapshot is never silently folded forward.
 */
export function foldBalanceSnapshot(snapshot: BalanceSnapshot | undefined, records: readonly LedgerRecord[]): FoldResult {
  let state: BalanceState = { status: 'unopened' };
  let nextRevision = 0n;
  let position = -1n;
  if (snapshot !== undefined) {
    const open = stateOf(snapshot);
    if (open === undefined) return { kind: 'gap' };
    state = open;
    nextRevision = BigInt(snapshot.revision) + 1n;
    position = BigInt(snapshot.position);
  }
  let last: LedgerRecord | undefined;
  for (const record of records) {
    if (record.position <= position) continue;
    if (record.revision !== nextRevision) return { kind: 'gap' };
    state = evolve(state, record.event);
    nextRevision += 1n;
    last = record;
  }
  if (last === undefined) return { kind: 'unchanged' };
  if (state.status !== 'open') throw new Error(`balance ${last.balanceId}: events folded to an unopened balance`);
  return { kind: 'changed', snapshot: snapshotOf(state, last) };
}
