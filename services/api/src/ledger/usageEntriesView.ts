import { Type, type Static } from '@sinclair/typebox';
import { refTo } from '../apiSchemas';
import { LedgerEntrySchema } from './ledgerEntryView';

/** What one usage event did, as GET /v1/customers/{customerId}/usage-events/{eventId} answers it. */
export const UsageEntriesSchema = Type.Object({
  customerId: Type.String(),
  eventId: Type.String({ description: "The usage event's id, as its producer sent it." }),
  metered: Type.Boolean({
    description:
      'true once the metering consumer has metered it: every entry it caused is listed (none when no balance of the customer had a rule for it, or it cost nothing), and sending it again changes nothing. false: not metered yet (still on the usage topic: see the consumer lag on /health) or not at all (dead-lettered: see GET /v1/dead-letters?key=<customerId>).',
  }),
  balances: Type.Array(
    Type.Object({
      balanceId: Type.String(),
      productId: Type.String(),
      entries: Type.Array(refTo(LedgerEntrySchema), { description: 'Its charge and what the charge caused (a freed hold, a low-balance warning, a depletion), in ledger order; a refunded charge with refundedBy.' }),
    }),
    { description: 'Only the balances it wrote on.' },
  ),
});

export type UsageEntriesView = Static<typeof UsageEntriesSchema>;
