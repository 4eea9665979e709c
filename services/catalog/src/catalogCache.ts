import type { CreditProduct } from '@tally/domain';
import type { Logger } from 'pino';
import type { CatalogStore } from './catalogStore';

export interface CatalogCache {
  /** The product as of the last refresh; a product unknown to the cache is looked up once in the store. */
  getProduct(productId: string): Promise<CreditProduct | undefined>;
  refresh(): Promise<void>;
  start(): Promise<void>;
  stop(): void;
}

export interface CatalogCacheOptions {
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
  const logger = options.logger.child({ module: 'catalog-cache' });
  let products = new Map<string, CreditProduct>();
  let timer: NodeJS.Timeout | undefined;

  async function refresh(): Promise<void> {
    const list = await options.store.listProducts();
    products = new Map(list.map((product) => [product.id, product]));
  }

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
      timer = setInterval(() => {
        refresh().catch((error: unknown) => logger.warn({ err: error }, 'catalog refresh failed; serving the last copy'));
      }, refreshIntervalMs);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
