import type { UsageEvent } from '@tally/domain';
import type { BalanceCommandRequest } from '@tally/ledger';
import type { UsageCharge } from './priceUsageBatch';

/** The usage property that names the hold a usage event settles (README, Holds). */
export const HOLD_ID_PROPERTY = 'holdId';

/**
 * The ConsumeUsage command of each charge, for the one command path (createBalanceCommandPath),
 * in batch order: the path decides each balance's commands in request order, each on the state
 * the one before left, so warnings fire exactly where a one-at-a-time consumer would fire them.
 * The command ids are commandIds.usage (priceUsageBatch), as ever: the stored event ids do not
 * change. Pure.
 */
export function usageCommands(usages: readonly UsageEvent[], charges: readonly UsageCharge[], at: string): BalanceCommandRequest[] {
  return charges.map((charge) => {
    const usage = usages[charge.index]!;
    // A usage event may settle a hold: its `holdId` property names it, and the decider frees it in
    // this same append (on the balance holding it; elsewhere the id names no open hold).
    const holdId = usage.properties[HOLD_ID_PROPERTY];
    return {
      context: charge.balance,
      commandId: charge.commandId,
      firstEventId: charge.firstEventId,
      command: {
        type: 'ConsumeUsage',
        credits: charge.credits,
        usage: { eventId: usage.id, event: usage.event, timestamp: new Date(usage.timestamp).toISOString(), quantity: charge.quantity },
        ...(typeof holdId === 'string' ? { holdId } : {}),
        at,
      },
    };
  });
}
