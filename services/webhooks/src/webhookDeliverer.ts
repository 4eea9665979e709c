import type { EventStore } from '@tally/event-store';
import type { BalanceStates } from '@tally/ledger';
import {
  createBackoff,
  createCheckpointedProcessor,
  createPeriodicWorker,
  createWorker,
  isPermanentFailure,
  withDeadline,
  type CheckpointStore,
  type ProcessorLag,
  type ProcessorMetrics,
  type Worker,
} from '@tally/runtime';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { createWebhookDispatcher } from './webhookDispatcher';
import { UnfoldableWebhookEventError } from './webhookErrors';
import { createWebhookRecorder } from './webhookRecorder';
import type { WebhookSender } from './webhookSender';
import type { WebhookDeliveryHealth, WebhookStore } from './webhookStore';

export interface WebhookDelivererOptions {
  readonly eventStore: Pick<EventStore, 'subscribeToAll' | 'headPosition' | 'readAll'>;
  /** Where the subscription's position is kept (subscription_checkpoints). */
  readonly checkpoints: CheckpointStore;
  /** Holds the lease: of the deliverers sharing a name, one works and the others stand by. */
  readonly pool: Pool;
  readonly store: WebhookStore;
  /** The ledger's balance states, for the balance in each payload. */
  readonly balanceStates: Pick<BalanceStates, 'at'>;
  readonly send: WebhookSender;
  /** The checkpoint's and the lease's name; default `webhooks`. */
  readonly name?: string;
  readonly retry: {
    /** Ceiling of the first pause after a failed attempt (the pause is between half of it and it); it doubles up to maxDelayMs. */
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    /** How long a delivery is retried before it is given up and its endpoint disabled. */
    readonly retryForMs: number;
  };
  /** Deliveries in flight at once; default 8. */
  readonly concurrency?: number;
  /** How often the sender looks for deliveries due (at once again while a round found some); default 1000. */
  readonly pollMs?: number;
  /** Events read from the store per batch; default 500. */
  readonly batchSize?: number;
  readonly lease?: { readonly standbyPollMs?: number; readonly heartbeatMs?: number; readonly timeoutMs?: number };
  /** How long a delivered webhook is kept (default 30 days), and how often the oldest are deleted (default a minute). */
  readonly retention?: { readonly deliveredMs?: number; readonly intervalMs?: number };
  readonly clock: () => Date;
  readonly logger: Logger;
  /**
   * The processor's lag and lease gauges, under the names given; with them, and read from the
   * store by the delivering process, tally_webhooks_endpoints_disabled and tally_webhooks_oldest_pending_seconds.
   */
  readonly metrics?: ProcessorMetrics;
}

export interface WebhookDeliverer extends Worker {
  /** Whether this process holds the lease and delivers (false while standing by). */
  isLeading(): boolean;
  /** How far recording deliveries is behind the event store. */
  lag(): ProcessorLag;
}

const DEFAULT_CONCURRENCY = 8;
const DEFAULT_POLL_MS = 1_000;
export const DEFAULT_RETAIN_DELIVERED_MS = 30 * 24 * 3_600_000;
const DEFAULT_RETENTION_INTERVAL_MS = 60_000;
/** The longest a scrape waits for the disabled endpoints and the oldest pending delivery, by default. */
const HEALTH_READ_TIMEOUT_MS = 1_000;
/** Deliveries one deletion removes: a bounded statement, repeated at once while it finds as many. */
const DELETE_BATCH = 1_000;

/**
 * Webhooks from the event store, in two stages that a table of deliveries joins:
 *
 * 1. Recording: a checkpointed subscription (@tally/runtime) hands every batch of ledger events
 *    to the recorder, which writes a delivery per event and endpoint that takes it; only then
 *    does the checkpoint move, so no event is skipped, and a crash in between records the batch
 *    again, which the deterministic webhook-ids make a no-op.
 * 2. Sending: the runtime's periodic worker sends, every pollMs, the deliveries that are due, the oldest pending one per endpoint and
 *    balance at a time, so each balance's webhooks reach an endpoint in ledger order and a
 *    receiver failing for one balance holds back nothing else; an endpoint with sends in flight
 *    takes another lane only while fewer than half are busy, so k endpoints whose receivers hang
 *    hold at most max(k, ⌊C/2⌋ + k − 1) of the C lanes, and leave one to the others while
 *    k ≤ ⌈C/2⌉ (the dispatcher's mayTakeLane; a hanging URL counts once per endpoint it is). A failed attempt is retried after
 *    a backoff with jitter (the runtime's schedule) until retry.retryForMs have passed since the
 *    first attempt; then the delivery is given up and its endpoint disabled with the reason.
 *
 * 3. Retention: what was delivered is kept retention.deliveredMs, then deleted with its attempts;
 *    what is pending or given up stays until it is sent.
 *
 * All three run only in the process that holds the lease (the processor's): with several
 * processes one delivers and the others stand by, taking over from the checkpoint and the
 * table when it stops or dies. A SIGKILL mid-send leaves that attempt unrecorded, so the
 * successor sends it again under the same webhook-id: at least once, never lost.
 */
export function createWebhookDeliverer(options: WebhookDelivererOptions): WebhookDeliverer {
  const name = options.name ?? 'webhooks';
  const logger = options.logger.child({ module: 'webhook-deliverer', name });
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const backoff = createBackoff({ initialDelayMs: options.retry.initialDelayMs, maxDelayMs: options.retry.maxDelayMs, jitter: 'equal' });

  const record = createWebhookRecorder({ store: options.store, balanceStates: options.balanceStates, clock: options.clock });
  const processor = createCheckpointedProcessor({
    name,
    eventStore: options.eventStore,
    checkpoints: options.checkpoints,
    what: 'recording webhook deliveries',
    logger,
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    lease: { pool: options.pool, ...options.lease },
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    // An event this release cannot fold is waited out, as the balance projector does: in a rolling
    // upgrade a release that folds it takes over. What else Tally names as not retriable fails
    // the deliverer (Worker.onFailure), so that its process stops and a standby takes over.
    isTransient: (error) => error instanceof UnfoldableWebhookEventError || !isPermanentFailure(error),
    async handle(events) {
      await record(events);
    },
  });
  const dispatch = createWebhookDispatcher({
    store: options.store,
    send: options.send,
    retry: { retryForMs: options.retry.retryForMs, delayAfter: (attempt) => backoff.delayMs(attempt) },
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    idleMs: pollMs,
    isLeading: () => processor.isLeading(),
    clock: options.clock,
    logger,
  });

  // Only the process holding the processor's lease sends; the others' rounds do nothing. A round
  // that failed (PostgreSQL away) is logged and runs again after the interval: every round starts
  // from the table, so repeating one is safe. A receiver failing is no error here: it is an
  // attempt with its outcome, scheduled by the dispatcher.
  const sender = createPeriodicWorker({
    name: `${name}-sender`,
    logger,
    intervalMs: pollMs,
    run: async (signal) => processor.isLeading() && (await dispatch(signal)) > 0,
  });

  const retainMs = options.retention?.deliveredMs ?? DEFAULT_RETAIN_DELIVERED_MS;
  const retention = createPeriodicWorker({
    name: `${name}-retention`,
    logger,
    intervalMs: options.retention?.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS,
    async run() {
      if (!processor.isLeading()) return false;
      const deleted = await options.store.deleteDelivered(new Date(options.clock().getTime() - retainMs), DELETE_BATCH);
      if (deleted > 0) logger.debug({ deleted }, 'deleted delivered webhooks past their retention');
      return deleted === DELETE_BATCH;
    },
  });

  if (options.metrics !== undefined) {
    // Read from the table when scraped, by the delivering process only (the standbys would read
    // the same rows): kept by the sender, they would freeze while its rounds fail. A standby
    // reports no disabled endpoints and 0, so that a deposed sender's last figures do not linger;
    // alerts take the max over processes.
    const registry = options.metrics.registry;
    /** The read under way: both gauges of a scrape, and a scrape while one runs, share it. */
    let reading: Promise<WebhookDeliveryHealth> | undefined;
    // A read that fails or is late leaves both gauges at their last values (the registry keeps
    // them, and logs the error), and /metrics answers the rest in time.
    const health = () => {
      reading ??= options.store.deliveryHealth().finally(() => (reading = undefined));
      return withDeadline(reading, HEALTH_READ_TIMEOUT_MS, () => new Error(`webhook endpoints and deliveries took over ${HEALTH_READ_TIMEOUT_MS} ms to read`));
    };
    registry.gauge({
      name: 'tally_webhooks_endpoints_disabled',
      help: 'Webhook endpoints disabled: by Tally after giving a delivery up (gave_up), or paused by a key (paused)',
      labelNames: ['reason'] as const,
      collect: async (gauge) => {
        if (!processor.isLeading()) {
          gauge.reset();
          return;
        }
        const { disabledByTally, paused } = await health();
        gauge.set({ reason: 'gave_up' }, disabledByTally);
        gauge.set({ reason: 'paused' }, paused);
      },
    });
    registry.gauge({
      name: 'tally_webhooks_oldest_pending_seconds',
      help: 'How long the oldest delivery pending on an enabled webhook endpoint has waited since it was recorded (0 when none)',
      collect: async (gauge) => {
        if (!processor.isLeading()) {
          gauge.set(0);
          return;
        }
        const now = options.clock();
        const { oldestPendingAt } = await health();
        gauge.set(oldestPendingAt === null ? 0 : Math.max(0, (now.getTime() - oldestPendingAt.getTime()) / 1000));
      },
    });
  }

  const worker = createWorker(name, {
    async start(_signal, fail) {
      // Without it a failed processor would leave the process running, holding the lease, delivering nothing.
      processor.onFailure(fail);
      await processor.start();
      await sender.start();
      await retention.start();
    },
    async stop() {
      await retention.stop();
      // The sender next: its stop aborts the attempts in flight (the sender answers them
      // `aborted`) and records none of them; the next deliverer makes them again, same webhook-id.
      await sender.stop();
      await processor.stop();
    },
  });
  return { ...worker, isLeading: () => processor.isLeading(), lag: () => processor.lag() };
}
