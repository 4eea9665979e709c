import { computeCost, TallyError, type CreditProduct, type Micros, type UsageEvent } from '@tally/domain';
import { commandIds, ledgerEventId, parseHoldId, type BalanceContext, type BalanceRef } from '@tally/ledger';
import { HOLD_ID_PROPERTY } from './usageCommands';

/** Why a usage event (or one of its balances) caused no ledger event. None of these is an error. */
export type SkipReason =
  /** The customer has no credit balance at all. */
  | 'no_balance'
  /** The balance's product is not in the catalog. */
  | 'product_not_found'
  /** No consumption rule of the balance's product matches the event. */
  | 'no_matching_rule'
  /** Rules matched, but the cost rounds to 0 credits. */
  | 'zero_cost'
  /** The registry lists the balance but its stream has no events yet (an opening in progress). */
  | 'balance_not_opened'
  /** This usage event (customer and id) was metered before, or earlier in the batch: a duplicate or a redelivery. Counted once per event. */
  | 'already_applied';

export interface UsageSkip {
  /** Index of the usage event in the batch. */
  readonly index: number;
  readonly reason: SkipReason;
  readonly balanceId?: string;
}

/** What one usage event costs one balance, before the balance's state is consulted. */
export interface UsageCharge {
  readonly index: number;
  readonly balance: BalanceContext;
  /**
   * 0 only for usage that names a hold of this balance (holdId) but costs it nothing: the charge
   * is there to free the hold (HoldReleased); the skip that says why nothing was charged is kept.
   */
  readonly credits: Micros;
  /** The quantity of the first matching rule, as an exact decimal string ('0' when none matched). */
  readonly quantity: string;
  readonly commandId: string;
  /** Id of the first event the charge causes (its CreditConsumed, or the HoldReleased of a 0-credit charge): once stored, the charge is applied. */
  readonly firstEventId: string;
}

export interface InvalidUsage {
  readonly index: number;
  readonly error: TallyError;
}

export interface PricedUsageBatch {
  /** In batch order, so each balance sees its usage in the order the partition delivered it. */
  readonly charges: readonly UsageCharge[];
  readonly skips: readonly UsageSkip[];
  /** Events that a product cannot price (e.g. a per-unit quantity that is missing or negative): dead letters. */
  readonly invalid: readonly InvalidUsage[];
}

/**
 * Prices a batch of usage events for every balance of their customers. Pure: the consumer fetches
 * the balances (one query per batch) and products (cached) and passes them in. An event that one
 * of its customer's products finds invalid is not charged to any balance: it goes to the dead
 * letters whole, so that a fixed and replayed event is charged once everywhere.
 */
export function priceUsageBatch(
  usages: readonly UsageEvent[],
  balancesByCustomer: ReadonlyMap<string, readonly Pick<BalanceRef, 'id' | 'customerId' | 'productId'>[]>,
  products: ReadonlyMap<string, CreditProduct>,
  /** Products that cannot be used (stored, but failing validation): their customers' usage is invalid. */
  unusableProducts: ReadonlyMap<string, TallyError> = new Map(),
): PricedUsageBatch {
  const charges: UsageCharge[] = [];
  const skips: UsageSkip[] = [];
  const invalid: InvalidUsage[] = [];
  usages.forEach((usage, index) => {
    const balances = balancesByCustomer.get(usage.customerId) ?? [];
    if (balances.length === 0) {
      skips.push({ index, reason: 'no_balance' });
      return;
    }
    const eventCharges: UsageCharge[] = [];
    const eventSkips: UsageSkip[] = [];
    // The one balance a hold id can name: its own prefix (holdIdOf), so no other balance is charged for it.
    const holdId = usage.properties[HOLD_ID_PROPERTY];
    const holdBalanceId = typeof holdId === 'string' ? parseHoldId(holdId)?.balanceId : undefined;
    try {
      for (const balance of balances) {
        const unusable = unusableProducts.get(balance.productId);
        if (unusable !== undefined) throw unusable;
        const product = products.get(balance.productId);
        const cost = product === undefined ? undefined : computeCost(product, usage);
        if (cost === undefined || !cost.matched || cost.credits === 0n) {
          eventSkips.push({ index, reason: cost === undefined ? 'product_not_found' : cost.matched ? 'zero_cost' : 'no_matching_rule', balanceId: balance.id });
          // Usage is metered once, now, whatever it cost: a hold it names on this balance is
          // freed now (a 0-credit charge, the decider's HoldReleased) or never by it.
          if (holdBalanceId !== balance.id) continue;
        }
        const commandId = commandIds.usage(usage.id, balance.id);
        eventCharges.push({
          index,
          balance: { balanceId: balance.id, customerId: balance.customerId, productId: balance.productId },
          credits: cost?.matched ? cost.credits : 0n,
          quantity: cost?.matched ? cost.quantity : '0',
          commandId,
          firstEventId: ledgerEventId(commandId, 0),
        });
      }
    } catch (error) {
      if (!(error instanceof TallyError) || error.retriable) throw error;
      invalid.push({ index, error });
      return;
    }
    charges.push(...eventCharges);
    skips.push(...eventSkips);
  });
  return { charges, skips, invalid };
}
