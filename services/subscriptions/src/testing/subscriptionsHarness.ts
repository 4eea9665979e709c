import { randomUUID } from 'node:crypto';
import { CatalogStore, createPostgresCatalogStore } from '@tally/catalog';
import type { CreditProduct } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import {
  BalanceRegistry,
  createLedgerService,
  createPostgresBalanceRegistry,
  createPurchaseService,
  LedgerService,
  PurchaseService,
  RecordedBalanceEvent,
} from '@tally/ledger';
import { createTestSchema, type TestSchema } from '@tally/test-support';
import pino, { type Logger } from 'pino';
import { createGrantScheduler, GrantScheduler } from '../grantScheduler';
import { createPostgresPlanStore } from '../postgresPlanStore';
import { createPostgresSubscriptionStore } from '../postgresSubscriptionStore';
import { createSubscriptionService, SubscriptionService } from '../subscriptionService';
import type { SubscriptionStore } from '../subscriptionStore';

/** A clock the test moves by hand: every service of the harness reads it. */
export interface TestClock {
  (): Date;
  set(iso: string | Date): void;
}

export function createTestClock(start: string): TestClock {
  let now = new Date(start);
  const clock = (() => new Date(now.getTime())) as TestClock;
  clock.set = (iso) => {
    now = new Date(iso);
  };
  return clock;
}

/** Real PostgreSQL in a schema of its own, the real event store, ledger and stores: only time is faked. */
export interface SubscriptionsHarness {
  readonly db: TestSchema;
  readonly logger: Logger;
  readonly clock: TestClock;
  readonly eventStore: EventStore;
  readonly catalog: CatalogStore;
  readonly balanceRegistry: BalanceRegistry;
  readonly ledger: LedgerService;
  readonly subscriptions: SubscriptionStore;
  readonly service: SubscriptionService;
  readonly purchases: PurchaseService;
  /** A scheduler as the main job builds it; its interval is long, tests call runOnce or start it. */
  newScheduler(intervalMs?: number, maxPeriodsPerRun?: number): GrantScheduler;
  /** A credit product with a fresh id, no consumption rules. */
  createProduct(fields?: Partial<CreditProduct>): Promise<CreditProduct>;
  /** Every ledger event of a balance, oldest first. */
  ledgerOf(balanceId: string): Promise<RecordedBalanceEvent[]>;
  close(): Promise<void>;
}

export async function createSubscriptionsHarness(prefix: string, start = '2024-01-31T09:00:00.000Z'): Promise<SubscriptionsHarness> {
  const db = await createTestSchema({ prefix });
  const logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });
  const clock = createTestClock(start);
  const eventStore = createPostgresEventStore({ pool: db.pool, logger, notifyChannel: `${db.schema}_events` });
  const catalog = createPostgresCatalogStore({ pool: db.pool, logger });
  const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
  const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger, clock });
  const plans = createPostgresPlanStore({ pool: db.pool, logger });
  const subscriptions = createPostgresSubscriptionStore({ pool: db.pool, logger });
  const service = createSubscriptionService({ plans, subscriptions, ledger, catalog, balanceRegistry, clock, logger });
  const purchases = createPurchaseService({ catalog, balanceRegistry, ledger });

  return {
    db,
    logger,
    clock,
    eventStore,
    catalog,
    balanceRegistry,
    ledger,
    subscriptions,
    service,
    purchases,
    newScheduler: (intervalMs = 60_000, maxPeriodsPerRun?: number) =>
      createGrantScheduler({ subscriptions, ledger, balanceRegistry, clock, intervalMs, logger, ...(maxPeriodsPerRun !== undefined ? { maxPeriodsPerRun } : {}) }),
    async createProduct(fields = {}) {
      const product: CreditProduct = {
        id: `product-${randomUUID()}`,
        name: 'API credits',
        description: '',
        consumption: [],
        lowBalanceThreshold: null,
        bundles: [],
        ...fields,
      };
      await catalog.createProduct(product);
      return product;
    },
    async ledgerOf(balanceId) {
      // Every page, newest first, so a balance with thousands of grants is read whole.
      const items: RecordedBalanceEvent[] = [];
      let before: bigint | undefined;
      do {
        const page = await ledger.readLedger(balanceId, { limit: 1000, ...(before !== undefined ? { before } : {}) });
        items.push(...page.items);
        before = page.next ?? undefined;
      } while (before !== undefined);
      return items.reverse();
    },
    async close() {
      await eventStore.close();
      await db.drop();
    },
  };
}

/** The grants among ledger events, as (period, credits) pairs in ledger order. */
export function grantsIn(events: readonly RecordedBalanceEvent[]): Array<{ period: number; credits: bigint; subscriptionId: string }> {
  return events.flatMap(({ event }) =>
    event.type === 'CreditToppedUp' && event.source === 'grant' && event.grant !== null
      ? [{ period: event.grant.period, credits: event.credits, subscriptionId: event.grant.subscriptionId }]
      : [],
  );
}
