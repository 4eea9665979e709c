import type { CatalogStore } from '@tally/catalog';
import type { EventStore } from '@tally/event-store';
import type { LedgerService } from '@tally/ledger';
import type { BalanceReadModel } from '@tally/projections';
import type { KeyedSerializer } from './keyedSerializer';

/** What the /v1 route modules use: the writes go through the ledger, the reads through the read model. */
export interface RouteDeps {
  readonly catalog: CatalogStore;
  readonly ledger: LedgerService;
  readonly balances: BalanceReadModel;
  readonly eventStore: Pick<EventStore, 'headPosition' | 'readStream'>;
  /** Every write to an existing balance runs through it, keyed by the balance id. */
  readonly balanceWrites: KeyedSerializer;
  /** How long `?consistent=true` waits for the read model, and how often it looks. */
  readonly consistency: { readonly timeoutMs: number; readonly pollIntervalMs: number };
}
