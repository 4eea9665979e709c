import { LruCache } from '@tally/domain';
import { NotificationListener } from '@tally/postgres';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { BalanceRef, BalanceRegistry } from './balanceRegistry';
import { keptRefs, refsOfKept, weighKeptRefs, type KeptRefs } from './cacheWeights';

/** Where migration 011's trigger tells which customer's balances changed (an empty payload: all). */
const BALANCE_REGISTRY_CHANNEL = 'tally_credit_balances';

interface BalanceRegistryCacheOptions {
  /** The registry itself; every method but balancesOfCustomers passes straight through. */
  readonly store: BalanceRegistry;
  /** Its database: the LISTEN connection is opened with this pool's settings, outside it. */
  readonly pool: Pool;
  readonly logger: Logger;
  /** Customers whose balances are kept in memory, least recently used leaving first. Default 100 000. */
  readonly capacity?: number;
  /**
   * Estimated bytes the kept customers may take (cacheWeights.ts), least recently used leaving
   * first; with `capacity`, whichever is reached first. Default: no byte bound.
   */
  readonly maxBytes?: number;
}

export interface BalanceRegistryCache extends BalanceRegistry {
  /**
   * Sets up LISTEN, so that the cache serves from the first lookups on. A failure is logged, not
   * thrown: the store answers everything meanwhile, and each lookup tries to listen again.
   */
  start(): Promise<void>;
  /**
   * Customers answered from memory and from the store, and notifications (or losses of the LISTEN
   * connection) taken in, since the start; the customers kept now and their estimated bytes.
   */
  stats(): { readonly hits: number; readonly misses: number; readonly invalidations: number; readonly customers: number; readonly bytes: number };
  /** Closes the LISTEN connection; the pool stays open (the caller owns it). */
  close(): Promise<void>;
}

/**
 * The balance registry as the metering consumer reads it: which balances a customer has, from
 * memory, so a chunk of usage does not query `credit_balances` every time (issue 11 §3).
 *
 * Never stale for longer than a notification takes: every change to the registry NOTIFYs the
 * customer's id at its commit (migration 011's trigger), which drops that customer's entry. A
 * registration therefore reaches the consumer as it did before (its next lookup reads the row,
 * and a balance not yet opened makes that usage wait), a few milliseconds after its commit
 * instead of at it; usage read in between is metered as if it had come before the registration,
 * which nothing could tell apart anyway.
 *
 * Nothing is answered from memory unless LISTEN is in place: while the connection is down (at
 * start, after a failure) every lookup goes to the store, and its loss clears the cache, since the
 * notifications sent meanwhile are gone. An answer read while a notification arrived, or while
 * not listening, is served but not kept: it may predate that change.
 */
export function createBalanceRegistryCache(options: BalanceRegistryCacheOptions): BalanceRegistryCache {
  const { store } = options;
  const logger = options.logger.child({ module: 'balance-registry-cache' });
  // Kept compact (cacheWeights.ts): about half the heap of the BalanceRef objects themselves.
  // Admitted by frequency once full: usage over more customers than it holds (met in turn, a
  // backfill) would otherwise replace every entry before its next use (see LruCache).
  const entries = new LruCache<string, KeptRefs>({
    admission: 'frequency',
    maxEntries: options.capacity ?? 100_000,
    ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes, weigh: weighKeptRefs } : {}),
  });
  // Product ids are few and each is held by many balances: one string each, bounded all the same.
  const productIds = new Map<string, string>();
  const listener = new NotificationListener(options.pool, BALANCE_REGISTRY_CHANNEL, logger);
  // Bumped by every notification and by the loss of the connection: a read that saw it change
  // may hold what was true before, and is not remembered.
  let generation = 0;
  let hits = 0;
  let misses = 0;
  listener.register((customerId) => {
    generation += 1;
    if (customerId === undefined || customerId === '') entries.clear();
    else entries.delete(customerId);
  });

  function listen(): Promise<void> {
    return listener.ensureListening().catch((error: unknown) => {
      logger.warn({ err: error }, 'cannot LISTEN for balance registry changes; reading the registry every time until it can');
    });
  }

  async function balancesOfCustomers(customerIds: readonly string[]): Promise<Map<string, BalanceRef[]>> {
    const listening = listener.listening;
    if (!listening) {
      // (Re)connect in the background; until then the store answers everything.
      void listen();
    }
    const byCustomer = new Map<string, BalanceRef[]>();
    const missing: string[] = [];
    for (const customerId of customerIds) {
      const cached = listening ? entries.get(customerId) : undefined;
      if (cached === undefined) missing.push(customerId);
      else if (cached.length > 0) byCustomer.set(customerId, refsOfKept(customerId, cached));
    }
    hits += customerIds.length - missing.length;
    misses += missing.length;
    if (missing.length === 0) return byCustomer;
    const before = generation;
    const loaded = await store.balancesOfCustomers(missing);
    const keep = listening && listener.listening && generation === before;
    for (const customerId of missing) {
      const refs = loaded.get(customerId);
      if (refs !== undefined) byCustomer.set(customerId, refs);
      // A customer without balances is remembered too: most usage of such customers is skipped,
      // and the registration that changes it notifies like any other.
      if (keep) entries.set(customerId, keptRefs(refs ?? [], productIds));
    }
    return byCustomer;
  }

  return {
    ...store,
    balancesOfCustomers,
    start: listen,
    stats: () => ({ hits, misses, invalidations: generation, customers: entries.size, bytes: entries.bytes }),
    close: () => listener.close(),
  };
}
