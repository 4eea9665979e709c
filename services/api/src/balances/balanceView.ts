import { Type, type Static } from '@sinclair/typebox';
import { formatCredits, type OpenBalance } from '@tally/domain';
import type { BalanceSnapshot } from '@tally/projections';
import { nullableString } from '../apiSchemas';

/** A credit balance as the API answers it; registered by its `$id`, so the OpenAPI document names it. */
export const CreditBalanceSchema = Type.Object(
  {
    id: Type.String(),
    customerId: Type.String(),
    productId: Type.String(),
    name: Type.String(),
    balance: Type.String({ description: 'Decimal string; may be negative after usage.' }),
    lowBalanceThreshold: nullableString(),
    belowThreshold: Type.Boolean(),
    updatedAt: Type.String({ format: 'date-time' }),
    position: Type.String({ description: 'Global event store position this view reflects.' }),
  },
  { $id: 'CreditBalance' },
);

export type BalanceView = Static<typeof CreditBalanceSchema>;

/** The read model's snapshot: what GETs serve. */
export function balanceViewOfSnapshot(snapshot: BalanceSnapshot): BalanceView {
  const { balanceId, customerId, productId, name, balance, lowBalanceThreshold, belowThreshold, updatedAt, position } = snapshot;
  return { id: balanceId, customerId, productId, name, balance, lowBalanceThreshold, belowThreshold, updatedAt, position };
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
