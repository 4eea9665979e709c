import { fitsAvailable, parseStoredCredits, type Micros } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import type { BalanceReadModel } from '@tally/projections';
import type { BalanceService } from '../balances/balanceService';
import { waitForConsistency } from '../balances/waitForConsistency';

export interface EntitlementView {
  readonly allowed: boolean;
  readonly available: string;
  readonly balance: string;
  readonly held: string;
  readonly overdraftLimit: string;
  readonly position: string;
  /** How long ago the read model last held every event; null before a projector has said. */
  readonly lagMs: number | null;
}

interface EntitlementServiceDeps {
  /** Guarded (guardBalanceReader). */
  readonly readModel: Pick<BalanceReadModel, 'getEntitlement' | 'servedCheckpoint'>;
  readonly eventStore: Pick<EventStore, 'headPosition'>;
  /** For a balance the read model does not hold yet: found in the balance registry, folded from the event store. */
  readonly balances: Pick<BalanceService, 'foldedOfProduct'>;
  readonly consistency: { readonly timeoutMs: number; readonly pollIntervalMs: number };
  readonly clock?: () => number;
}

export interface EntitlementService {
  /** May the customer spend `credits` of the product now? Decided as a hold would be (fitsAvailable), on the read model. */
  check(customerId: string, productId: string, credits: Micros, options: { readonly consistent: boolean }): Promise<EntitlementView>;
}

/**
 * The hottest read a product backend makes: one Redis script (the balance of the product, the
 * checkpoint and the read model's freshness). It decides nothing and sets nothing aside: a hold
 * does that; this answers whether one (or usage of that size) would fit right now.
 */
export function createEntitlementService(deps: EntitlementServiceDeps): EntitlementService {
  const clock = deps.clock ?? Date.now;
  return {
    async check(customerId, productId, credits, { consistent }) {
      const source = consistent ? await waitForConsistency({ balances: deps.readModel, eventStore: deps.eventStore, ...deps.consistency }) : 'readModel';
      // A consistent check while the read model is rebuilt is folded at once (as balanceService.get).
      const read = source === 'fold' ? undefined : await deps.readModel.getEntitlement(customerId, productId);
      let figures: { balance: string; held: string; available: string; overdraftLimit: string; position: string };
      let lagMs: number | null;
      if (read?.snapshot !== undefined) {
        figures = { ...read.snapshot, position: read.checkpoint.toString() };
        lagMs = read.freshAsOf === undefined ? null : Math.max(0, clock() - read.freshAsOf);
      } else {
        // Opened a moment ago, or the read model is rebuilt: folded from the event store, current.
        // Not through the customer's list, which leaves out what it cannot find while the registry
        // is unreadable: a 404 then would have a backend refuse work of a customer who has credits.
        figures = await deps.balances.foldedOfProduct(customerId, productId);
        lagMs = 0;
      }
      const allowed = fitsAvailable(
        { balance: parseStoredCredits(figures.balance), held: parseStoredCredits(figures.held), overdraftLimit: parseStoredCredits(figures.overdraftLimit) },
        credits,
      );
      const { balance, held, available, overdraftLimit, position } = figures;
      return { allowed, available, balance, held, overdraftLimit, position, lagMs };
    },
  };
}
