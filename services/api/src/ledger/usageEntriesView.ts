import { Type, type Static } from '@sinclair/typebox';
import { nullableString, refTo } from '../apiSchemas';
import { LedgerEntrySchema } from './ledgerEntryView';

/** What one usage event did, as GET /v1/customers/{customerId}/usage-events/{eventId} answers it. */
export const UsageEntriesSchema = Type.Object({
  customerId: Type.String(),
  eventId: Type.String({ description: "The usage event's id, as its producer sent it." }),
  metered: Type.Boolean({
    description:
      'true once the metering consumer has metered it: every entry it caused is listed (none when no balance of the customer had a rule for it, or it cost nothing), and sending it again changes nothing. false: not metered yet (still on the usage topic: see the consumer lag on /health) or not at all (dead-lettered: see deadLetters).',
  }),
  deadLetters: Type.Optional(
    Type.Array(
      Type.Object({
        partition: Type.Integer({ description: 'Partition of the dead-letter topic.' }),
        offset: Type.String({ description: 'Offset on the dead-letter topic, where the whole letter is (GET /v1/dead-letters/{partition}/{offset}, admin).' }),
        deadLetteredAt: Type.String({ format: 'date-time' }),
        errorCode: nullableString({ description: 'e.g. invalid_usage_event, balance_not_opened, unmeterable_usage.' }),
        reason: nullableString({ description: 'Why it could not be metered.' }),
        sentBackAt: nullableString({ format: 'date-time', description: 'When a send-back last sent it to the usage topic; null if none has.' }),
      }),
      {
        description:
          "The dead letters of this usage event, newest first, as far as the dead-letter log remembers (its newest 1,000 letters, of every customer): each time the consumer could not meter it, and why. A letter names its usage event when its customer and id could be read from it, even when it failed validation; bytes that could not be read name none (see GET /v1/dead-letters?key=<customerId>). An event dead-lettered, fixed and sent back is metered with its letters still listed. Absent when this API keeps no dead-letter log.",
      },
    ),
  ),
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
