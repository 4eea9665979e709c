/**
 * What the webhook integration tests share: a migrated test schema with the event store, the
 * ledger and a credit product on it; the webhook store and endpoint service; a workload that
 * raises every balance webhook; and deliverers in this process with the test timings.
 */
import { createPostgresCatalogStore } from '@tally/catalog';
import { balanceIdOfStream, MICROS_PER_CREDIT } from '@tally/domain';
import { createPostgresEventStore, type EventStore } from '@tally/event-store';
import { createBalanceStates, createLedgerService, createPostgresBalanceRegistry, type LedgerService } from '@tally/ledger';
import { createPostgresCheckpointStore } from '@tally/runtime';
import { createTestSchema, uniqueName, type TestSchema } from '@tally/test-support';
import type { WebhookEventType } from '@tally/schemas';
import pino, { type Logger } from 'pino';
import { createPostgresWebhookStore } from '../postgresWebhookStore';
import { createWebhookDeliverer, type WebhookDeliverer, type WebhookDelivererOptions } from '../webhookDeliverer';
import { createWebhookEndpointService, type WebhookEndpointService } from '../webhookEndpointService';
import { webhookEventTypeOf } from '../webhookEvents';
import { createWebhookSender } from '../webhookSender';
import type { WebhookStore } from '../webhookStore';

export const testLogger: Logger = pino({ level: process.env.TALLY_TEST_LOG_LEVEL ?? 'silent' });

/**
 * The deliverer's timings in tests: delays of tens of milliseconds instead of seconds to hours,
 * so retries, a receiver's timeouts and a takeover all happen within a test's few seconds.
 */
const TEST_DELIVERER_TIMINGS = {
  retry: { initialDelayMs: 50, maxDelayMs: 400, retryForMs: 10 * 60_000 },
  send: { connectTimeoutMs: 1_000, responseTimeoutMs: 400 },
  pollMs: 50,
  batchSize: 20,
  lease: { standbyPollMs: 200, heartbeatMs: 200, timeoutMs: 1_000 },
} as const;

/** The same timings for the main job as an OS process (TALLY_ROLES=webhooks), as its variables. */
export const TEST_DELIVERER_ENV = {
  TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'true',
  TALLY_WEBHOOKS_RETRY_INITIAL_DELAY_MS: String(TEST_DELIVERER_TIMINGS.retry.initialDelayMs),
  TALLY_WEBHOOKS_RETRY_MAX_DELAY_MS: String(TEST_DELIVERER_TIMINGS.retry.maxDelayMs),
  TALLY_WEBHOOKS_RETRY_FOR_MS: String(TEST_DELIVERER_TIMINGS.retry.retryForMs),
  TALLY_WEBHOOKS_CONNECT_TIMEOUT_MS: String(TEST_DELIVERER_TIMINGS.send.connectTimeoutMs),
  TALLY_WEBHOOKS_RESPONSE_TIMEOUT_MS: String(TEST_DELIVERER_TIMINGS.send.responseTimeoutMs),
  TALLY_WEBHOOKS_POLL_MS: String(TEST_DELIVERER_TIMINGS.pollMs),
} as const;

const credits = (n: number): bigint => BigInt(n) * MICROS_PER_CREDIT;

/** A ledger event that raises a webhook. */
export interface ExpectedWebhook {
  readonly eventId: string;
  readonly balanceId: string;
  readonly position: bigint;
  readonly type: WebhookEventType;
}

export interface WebhookHarness {
  readonly db: TestSchema;
  readonly eventStore: EventStore;
  readonly ledger: LedgerService;
  readonly store: WebhookStore;
  readonly endpoints: WebhookEndpointService;
  /** A deliverer name of the test's own (checkpoint and lease). */
  readonly name: string;
  /** Moves the ledger's clock (not the deliverer's) forward, e.g. past a hold's expiry. */
  advanceLedgerClock(ms: number): void;
  openBalance(): Promise<string>;
  /**
   * A top-up, a purchase and a grant, then deductions below the threshold (10) and below zero,
   * and a refund of part of the second: one of each balance webhook per round.
   */
  driveRound(balanceId: string, round: number): Promise<void>;
  /** The ledger events after `afterPosition` that raise a webhook, in position order. */
  expectedWebhooks(afterPosition: bigint): Promise<ExpectedWebhook[]>;
  /** A deliverer in this process, with the test timings; stopped in close(). */
  createDeliverer(overrides?: Partial<WebhookDelivererOptions>): WebhookDeliverer;
  close(): Promise<void>;
}

export async function createWebhookHarness(prefix: string): Promise<WebhookHarness> {
  const db = await createTestSchema({ prefix });
  const eventStore = createPostgresEventStore({ pool: db.pool, logger: testLogger });
  const catalog = createPostgresCatalogStore({ pool: db.pool, logger: testLogger });
  let ledgerClockOffsetMs = 0;
  const balanceRegistry = createPostgresBalanceRegistry({ pool: db.pool });
  const ledger = createLedgerService({ eventStore, catalog, balanceRegistry, logger: testLogger, clock: () => new Date(Date.now() + ledgerClockOffsetMs) });
  const store = createPostgresWebhookStore(db.pool);
  const endpoints = createWebhookEndpointService({
    store,
    eventStore,
    secretGraceMs: 60_000,
    clock: () => new Date(),
    allowPrivateNetworks: true,
  });
  await catalog.createProduct({
    id: 'api-credits',
    name: 'API credits',
    description: '',
    consumption: [],
    lowBalanceThreshold: credits(10),
    bundles: [{ id: 'bundle-100', credits: credits(100), price: { amount: '9.99', currency: 'EUR' }, purchaseOption: true }],
  });
  const deliverers: WebhookDeliverer[] = [];
  const name = uniqueName('webhooks');

  return {
    db,
    eventStore,
    ledger,
    store,
    endpoints,
    name,

    advanceLedgerClock(ms) {
      ledgerClockOffsetMs += ms;
    },

    async openBalance() {
      const { balance } = await ledger.openBalance({ customerId: uniqueName('customer'), productId: 'api-credits', startingBalance: credits(20) });
      return balance.balanceId;
    },

    async driveRound(balanceId, round) {
      await ledger.topUp(balanceId, { credits: credits(5), reason: `round ${round}` });
      await ledger.purchase(balanceId, { bundleId: 'bundle-100', quantity: 1, unitPrice: '9.99', totalPrice: '9.99', currency: 'EUR', credits: credits(100) });
      await ledger.grant(balanceId, {
        subscriptionId: `sub-${balanceId}`,
        planId: 'pro',
        period: round,
        periodStart: new Date(Date.UTC(2026, round, 1)).toISOString(),
        periodEnd: new Date(Date.UTC(2026, round + 1, 1)).toISOString(),
        credits: credits(50),
        productId: 'api-credits',
      });
      const { balance } = await ledger.getBalance(balanceId);
      await ledger.deduct(balanceId, { credits: balance.balance - credits(5), reason: 'below the threshold' });
      const belowZero = await ledger.deduct(balanceId, { credits: credits(8), reason: 'below zero' });
      await ledger.refund(balanceId, { entryId: belowZero.events[0]!.eventId, credits: credits(1), reason: 'partly wrong' });
      await ledger.topUp(balanceId, { credits: credits(20), reason: 'back above zero' });
    },

    async expectedWebhooks(afterPosition) {
      const events = await eventStore.readAll({ after: afterPosition });
      return events.flatMap((event) => {
        const type = webhookEventTypeOf(event);
        const balanceId = balanceIdOfStream(event.streamId);
        return type === undefined || balanceId === undefined ? [] : [{ eventId: event.id, balanceId, position: event.position, type }];
      });
    },

    createDeliverer(overrides = {}) {
      const { send, ...timings } = TEST_DELIVERER_TIMINGS;
      const deliverer = createWebhookDeliverer({
        ...timings,
        name,
        eventStore,
        checkpoints: createPostgresCheckpointStore(db.pool),
        pool: db.pool,
        store,
        balanceStates: createBalanceStates({ eventStore, logger: testLogger }),
        send: createWebhookSender({ ...send, allowPrivateNetworks: true }),
        clock: () => new Date(),
        logger: testLogger,
        ...overrides,
      });
      deliverers.push(deliverer);
      return deliverer;
    },

    async close() {
      await Promise.allSettled(deliverers.map((deliverer) => deliverer.stop()));
      await eventStore.close();
      await db.drop();
    },
  };
}
