import { isoFromMillis, type UsageEvent } from '@tally/domain';
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
  // A usage event's charges are adjacent (one per balance of its customer): its time is written once.
  let timestampOf = -1;
  let timestamp = '';
  return charges.map((charge) => {
    const usage = usages[charge.index]!;
    if (timestampOf !== charge.index) {
      timestampOf = charge.index;
      timestamp = isoFromMillis(usage.timestamp);
    }
    // A usage event may settle a hold: its `holdId` property names it, and the decider frees it in
    // this same append (on the balance holding it; elsewhere the id names no open hold).
    const holdId = usage.properties[HOLD_ID_PROPERTY];
    const usageDetails = { eventId: usage.id, event: usage.event, timestamp, quantity: charge.quantity };
    return {
      context: charge.balance,
      commandId: charge.commandId,
      firstEventId: charge.firstEventId,
      command:
        typeof holdId === 'string'
          ? { type: 'ConsumeUsage', credits: charge.credits, usage: usageDetails, holdId, at }
          : { type: 'ConsumeUsage', credits: charge.credits, usage: usageDetails, at },
    };
  });
}
