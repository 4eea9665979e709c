import { Type, type Static } from '@sinclair/typebox';
import { availableOf, formatCredits, type OpenBalance } from '@tally/domain';
import type { BalanceSnapshot } from '@tally/projections';
import { nullableString } from '../apiSchemas';

/** A credit balance as the API answers it; registered by its `$id`, so the OpenAPI document names it. */
export const CreditBalanceSchema = Type.Object(
  {
    id: Type.String(),
    customerId: Type.String(),
    productId: Type.String(),
    name: Type.String(),
    balance: Type.String({ description: 'Settled credits, a decimal string; may be negative after usage.' }),
    held: Type.String({ description: 'Credits set aside by open holds.' }),
    available: Type.String({ description: 'balance − held: what holds and entitlement checks may spend, down to −overdraftLimit.' }),
    overdraftLimit: Type.String({ description: 'How far below zero holds and entitlement checks may take available (usage is charged in full regardless).' }),
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
  const { balanceId, customerId, productId, name, balance, held, available, overdraftLimit, lowBalanceThreshold, belowThreshold, updatedAt, position } = snapshot;
  return { id: balanceId, customerId, productId, name, balance, held, available, overdraftLimit, lowBalanceThreshold, belowThreshold, updatedAt, position };
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
    held: formatCredits(state.held),
    available: formatCredits(availableOf(state)),
    overdraftLimit: formatCredits(state.overdraftLimit),
    lowBalanceThreshold: threshold === null ? null : formatCredits(threshold),
    belowThreshold: threshold !== null && state.balance < threshold,
    updatedAt: state.updatedAt,
    position: position.toString(),
  };
}
