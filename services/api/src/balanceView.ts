import { formatCredits, type OpenBalance } from '@tally/domain';
import type { BalanceSnapshot } from '@tally/projections';

/** A credit balance as the API answers it (the CreditBalance schema). */
export interface BalanceView {
  readonly id: string;
  readonly customerId: string;
  readonly productId: string;
  readonly name: string;
  readonly balance: string;
  readonly lowBalanceThreshold: string | null;
  readonly belowThreshold: boolean;
  readonly updatedAt: string;
  readonly position: string;
}

/** The read model's snapshot: what GETs serve. */
export function balanceViewOfSnapshot(snapshot: BalanceSnapshot): BalanceView {
  return {
    id: snapshot.balanceId,
    customerId: snapshot.customerId,
    productId: snapshot.productId,
    name: snapshot.name,
    balance: snapshot.balance,
    lowBalanceThreshold: snapshot.lowBalanceThreshold,
    belowThreshold: snapshot.belowThreshold,
    updatedAt: snapshot.updatedAt,
    position: snapshot.position,
  };
}

/**
 * A state folded from the event store: what writes answer, since the snapshot may not have
 * caught up with the events they just appended.
 */
export function balanceViewOfState(state: OpenBalance, position: bigint): BalanceView {
  const threshold = state.lowBalanceThreshold;
  return {
    id: state.balanceId,
    customerId: state.customerId,
    productId: state.productId,
    name: state.name,
    balance: formatCredits(state.balance),
    lowBalanceThreshold: threshold === null ? null : formatCredits(threshold),
    belowThreshold: threshold !== null && state.balance < threshold,
    updatedAt: state.updatedAt,
    position: position.toString(),
  };
}
