import { Type, type Static } from '@sinclair/typebox';
import type { BalanceSnapshot } from '@tally/projections';
import { answeredCredits, nullableAnsweredCredits } from '../apiSchemas';

/** A credit balance as the API answers it; registered by its `$id`, so the OpenAPI document names it. */
export const CreditBalanceSchema = Type.Object(
  {
    id: Type.String(),
    customerId: Type.String(),
    productId: Type.String(),
    name: Type.String(),
    balance: answeredCredits('Settled credits, a decimal string; may be negative after usage.'),
    held: answeredCredits('Credits set aside by open holds.'),
    available: answeredCredits('balance − held: what holds and entitlement checks may spend, down to −overdraftLimit.'),
    overdraftLimit: answeredCredits('How far below zero holds and entitlement checks may take available (usage is charged in full regardless).'),
    lowBalanceThreshold: nullableAnsweredCredits(),
    belowThreshold: Type.Boolean(),
    updatedAt: Type.String({ format: 'date-time' }),
    position: Type.String({ description: 'Global event store position this view reflects.' }),
    revision: Type.String({
      description:
        "The balance's version: the revision of the last entry of its ledger (decimal string), one more per entry, a top-up as much as a settings change. Also its ETag, quoted; send it back as `If-Match` to change the settings of only this version.",
    }),
  },
  { $id: 'CreditBalance' },
);

export type BalanceView = Static<typeof CreditBalanceSchema>;

/** A balance as the API answers it, from the read model's snapshot (a folded one goes through snapshotOf first). */
export function balanceViewOfSnapshot(snapshot: BalanceSnapshot): BalanceView {
  const { balanceId, customerId, productId, name, balance, held, available, overdraftLimit, lowBalanceThreshold, belowThreshold, updatedAt, position, revision } = snapshot;
  return { id: balanceId, customerId, productId, name, balance, held, available, overdraftLimit, lowBalanceThreshold, belowThreshold, updatedAt, position, revision };
}
