import type { CreditProduct } from '@tally/domain';
import { createPeriodicWorker } from '@tally/runtime';
import type { Logger } from 'pino';
import type { CatalogStore } from './catalogStore';

export interface CatalogCache {
  /** The product as of the last refresh; a product unknown to the cache is looked up once in the store. */
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  refresh(): Promise<void>;
  /** Loads the catalog (rejects when the store cannot), then refreshes it in the background. */
  start(): Promise<void>;
  /** Ends the refreshes; resolves once the one in flight, if any, has ended. */
  stop(): Promise<void>;
}

interface CatalogCacheOptions {
  readonly store: CatalogStore;
  readonly logger: Logger;
  /** How stale a product may be: changes are seen within this interval, without a restart. */
  readonly refreshIntervalMs?: number;
}

/**
 * The metering consumer prices every usage event, so products are read from memory. The whole
 * catalog is reloaded on an interval (catalogs hold tens to hundreds of products, one small
 * query); a failed refresh keeps serving the last good copy and says so in the log.
 */
export function createCatalogCache(options: CatalogCacheOptions): CatalogCache {
  const refreshIntervalMs = options.refreshIntervalMs ?? 2000;
  if (!Number.isInteger(refreshIntervalMs) || refreshIntervalMs < 10) {
    throw new Error('refreshIntervalMs must be an integer of at least 10');
  }
  let products = new Map<string, CreditProduct>();

  async function refresh(): Promise<void> {
    const list = await options.store.listProducts();
    products = new Map(list.map((product) => [product.id, product]));
  }
  // Loaded by start() itself, so the first background refresh comes one interval later.
  const refresher = createPeriodicWorker({ name: 'catalog-cache', logger: options.logger, intervalMs: refreshIntervalMs, runAtStart: false, run: refresh });

  return {
    async getProduct(productId) {
      const cached = products.get(productId);
      if (cached !== undefined) return cached;
      const fresh = await options.store.getProduct(productId);
      if (fresh !== undefined) products.set(productId, fresh);
      return fresh;
    },
    refresh,
    async start() {
      await refresh();
      await refresher.start();
    },
    stop: () => refresher.stop(),
  };
}
