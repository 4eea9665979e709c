import { isTransientError, retry as retrying, sleep } from '@tally/runtime';
import type { Logger } from 'pino';
import { signWebhook } from './webhookSigner';
import type { WebhookSender } from './webhookSender';
import type { DueWebhookDelivery, WebhookAttempt, WebhookAttemptOutcome, WebhookStore } from './webhookStore';

export interface WebhookRetryPolicy {
  /** How long a delivery is retried, from its first attempt, before it is given up and its endpoint disabled. */
  readonly retryForMs: number;
  /** The pause before attempt `attempt + 1` after `attempt` failed (backoff with jitter). */
  delayAfter(attempt: number): number;
}

interface WebhookDispatcherOptions {
  readonly store: Pick<WebhookStore, 'dueDeliveries' | 'recordAttempt'>;
  readonly send: WebhookSender;
  readonly retry: WebhookRetryPolicy;
  /** Deliveries in flight at once (each to a different endpoint and balance). */
  readonly concurrency: number;
  /**
   * While attempts are in flight and nothing else may go, how long a round waits before it
   * looks for deliveries that fell due meanwhile (it looks at once when an attempt ends).
   */
  readonly idleMs: number;
  /** Whether this process still sends: a round stops taking deliveries once it does not. */
  readonly isLeading: () => boolean;
  readonly clock: () => Date;
  readonly logger: Logger;
}

/**
 * Whether a delivery to an endpoint with `load` attempts in flight may start while `busy` of the
 * `concurrency` lanes are: an endpoint with nothing in flight takes any free lane, one with
 * attempts in flight another only while fewer than half the lanes (⌊C/2⌋) are busy. So k
 * endpoints whose receivers hang (each attempt waiting out the response timeout) hold at most
 * max(k, ⌊C/2⌋ + k − 1) lanes (the first due alone takes ⌊C/2⌋, each other one lane), and with
 * C ≥ 2 and k ≤ ⌈C/2⌉ at least one lane is left to every other endpoint. Lanes are counted by
 * endpoint: one hanging URL registered as several endpoints is k of them.
 */
export function mayTakeLane(concurrency: number, busy: number, load: number): boolean {
  if (busy >= concurrency) return false;
  return load === 0 || busy < Math.floor(concurrency / 2);
}

/** The most attempts one endpoint has in flight, which mayTakeLane implies: half the lanes, rounded down, or the one. */
export function sendsPerEndpoint(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 2));
}

/**
 * Tries of one attempt's record while PostgreSQL fails transiently (a second or two of backoff):
 * past them the round ends, as when reading fails, and the next round starts from the table.
 */
const RECORD_TRIES = 5;

/**
 * Deliveries held back because their attempt could not be recorded, at most: past it the oldest
 * is forgotten (sent again at the next round, then held back anew), so memory stays bounded.
 */
const MAX_HELD_BACK = 1_000;

/** What a status means: 2xx is delivered; anything else (3xx too: redirects are not followed) is a failure. */
export function isDelivered(statusCode: number | null): boolean {
  return statusCode !== null && statusCode >= 200 && statusCode < 300;
}

/** The outcome of a failed attempt: try again after the backoff, or give up once the retry period is over. */
export function outcomeOfFailure(
  delivery: Pick<DueWebhookDelivery, 'firstAttemptAt'>,
  attempt: number,
  at: Date,
  retry: WebhookRetryPolicy,
  failure: string,
): WebhookAttemptOutcome {
  const first = delivery.firstAttemptAt ?? at;
  const next = new Date(at.getTime() + retry.delayAfter(attempt));
  if (next.getTime() - first.getTime() > retry.retryForMs) {
    return {
      status: 'failed',
      disableReason: `a delivery failed for ${Math.round((at.getTime() - first.getTime()) / 1000)} s over ${attempt} attempts (last: ${failure}); retried for ${retry.retryForMs} ms at most`,
    };
  }
  return { status: 'pending', nextAttemptAt: next };
}

/**
 * One round of sending: the deliveries due (the oldest pending one per endpoint and balance, so a
 * balance's webhooks reach an endpoint in ledger order), each signed at the moment of its attempt
 * and sent, `concurrency` at a time as mayTakeLane lets them (at most `sendsPerEndpoint` to one
 * endpoint); each attempt is recorded with its outcome. A lane that frees takes the next delivery at once, while other
 * attempts still run: the round goes on until nothing is due and nothing is in flight, so a
 * receiver that hangs holds back its own deliveries, never another endpoint's. Resolves to the
 * number of attempts made.
 *
 * Delivery is at least once: an attempt the receiver took but whose answer was lost (a timeout,
 * a crash before recordAttempt) is made again, under the same webhook-id.
 */
export function createWebhookDispatcher(options: WebhookDispatcherOptions): (signal: AbortSignal) => Promise<number> {
  const { store, send, retry, clock, concurrency } = options;
  const logger = options.logger.child({ module: 'webhook-dispatcher' });
  /**
   * Deliveries whose attempt could not be recorded: still pending in the table, so every round
   * would send them again, without backoff (a round that recorded anything else is followed at
   * once). Each waits the retry policy's pause for its count of such failures, across rounds;
   * forgotten once an attempt of it is recorded.
   */
  const heldBack = new Map<string, { readonly failures: number; readonly notBefore: number }>();
  const holdBack = (deliveryId: string) => {
    const failures = (heldBack.get(deliveryId)?.failures ?? 0) + 1;
    heldBack.delete(deliveryId);
    if (heldBack.size >= MAX_HELD_BACK) heldBack.delete(heldBack.keys().next().value!);
    heldBack.set(deliveryId, { failures, notBefore: clock().getTime() + retry.delayAfter(failures) });
  };
  const isHeldBack = (deliveryId: string) => (heldBack.get(deliveryId)?.notBefore ?? -Infinity) > clock().getTime();
  /**
   * The ids still in their pause, for the read to leave out: filtered after it, they would take
   * its limit, and `concurrency * 4` of them due first would starve every other endpoint.
   */
  const stillHeldBack = () => [...heldBack.keys()].filter(isHeldBack);

  const write = (deliveryId: string, made: WebhookAttempt, outcome: WebhookAttemptOutcome) =>
    retrying(() => store.recordAttempt(deliveryId, made, outcome), { what: 'recording a webhook attempt', logger, isTransient: isTransientError, maxAttempts: RECORD_TRIES });

  /**
   * Records an attempt; false when it could not be, for a reason that trying again will not
   * change (the store already makes what a receiver answers storable: this is a bug or a schema
   * this release does not know). Transient failures are retried, then end the round.
   */
  async function record(delivery: DueWebhookDelivery, made: WebhookAttempt, outcome: WebhookAttemptOutcome): Promise<boolean> {
    try {
      await write(delivery.id, made, outcome);
      return true;
    } catch (error) {
      if (isTransientError(error)) throw error;
      logger.error({ err: error, endpointId: delivery.endpointId, deliveryId: delivery.id, attempt: made.attempt }, 'could not record a webhook attempt');
      return false;
    }
  }

  /** Resolves to whether the attempt was made and recorded, or undefined when a stop cut it short. */
  async function attempt(delivery: DueWebhookDelivery, signal: AbortSignal): Promise<boolean | undefined> {
    const number = delivery.attempts + 1;
    const startedAt = clock();
    const headers = signWebhook({ id: delivery.id, timestamp: startedAt, body: delivery.body, secrets: delivery.secrets });
    const response = await send({ url: delivery.url, headers: { ...headers }, body: delivery.body, signal });
    // Cut short by a stop: not the receiver's failure, so not an attempt; the delivery stays due.
    if (response.aborted === true) return undefined;
    const failure = isDelivered(response.statusCode) ? undefined : (response.error ?? `HTTP ${response.statusCode}`);
    // The backoff counts from the retry period's start: a manual retry or re-enabling starts a new one.
    const inPeriod = delivery.firstAttemptAt === null ? 1 : delivery.attemptsThisPeriod + 1;
    const outcome: WebhookAttemptOutcome = failure === undefined ? { status: 'succeeded' } : outcomeOfFailure(delivery, inPeriod, startedAt, retry, failure);
    if (outcome.status === 'failed') logger.warn({ endpointId: delivery.endpointId, deliveryId: delivery.id, reason: outcome.disableReason }, 'giving up a webhook delivery; disabling its endpoint');
    else if (failure !== undefined) logger.debug({ endpointId: delivery.endpointId, deliveryId: delivery.id, attempt: number, failure }, 'webhook attempt failed');
    return record(
      delivery,
      {
        attempt: number,
        startedAt,
        durationMs: response.durationMs,
        statusCode: response.statusCode,
        error: response.error,
        responseBody: response.body,
      },
      outcome,
    );
  }

  return async (signal) => {
    /** The attempts in flight by delivery id, and how many each endpoint has. */
    const running = new Map<string, Promise<void>>();
    const endpointLoad = new Map<string, number>();
    /** Due deliveries read and not started yet (never one in flight: those are left out when read). */
    let ready: DueWebhookDelivery[] = [];
    let readAt = 0;
    let made = 0;
    let failed: { readonly error: unknown } | undefined;
    /** Aborted when an attempt ends: a wait for a free lane or a free endpoint ends with it. */
    let attemptEnded = new AbortController();
    /**
     * Deliveries whose attempt ended while a read was under way: that read may have seen them
     * pending (PostgreSQL answers as of the query's start), and must not send them again.
     */
    let endedDuringRead: Set<string> | undefined;
    // See mayTakeLane: k endpoints whose receivers hang hold at most max(k, ⌊C/2⌋ + k − 1) lanes.
    const mayGo = (delivery: DueWebhookDelivery) => mayTakeLane(concurrency, running.size, endpointLoad.get(delivery.endpointId) ?? 0);
    const start = (delivery: DueWebhookDelivery) => {
      endpointLoad.set(delivery.endpointId, (endpointLoad.get(delivery.endpointId) ?? 0) + 1);
      const run = attempt(delivery, signal)
        .then(
          (recorded) => {
            if (recorded === false) holdBack(delivery.id);
            if (recorded !== true) return;
            made += 1;
            heldBack.delete(delivery.id);
          },
          (error: unknown) => void (failed ??= { error }),
        )
        .finally(() => {
          running.delete(delivery.id);
          endedDuringRead?.add(delivery.id);
          endpointLoad.set(delivery.endpointId, endpointLoad.get(delivery.endpointId)! - 1);
          attemptEnded.abort();
        });
      running.set(delivery.id, run);
    };
    try {
      while (!signal.aborted && failed === undefined && options.isLeading()) {
        if (attemptEnded.signal.aborted) attemptEnded = new AbortController();
        // Read again when nothing read may go, and at least every idleMs (an endpoint disabled
        // meanwhile is sent nothing more than that late). A delivery in flight is still pending
        // in the table, and so may be one whose attempt ended while the read ran: both are left
        // out, or they would be sent twice (the second ignoring the backoff).
        if (running.size < concurrency && (!ready.some(mayGo) || clock().getTime() - readAt >= options.idleMs)) {
          readAt = clock().getTime();
          const ended = new Set<string>();
          endedDuringRead = ended;
          try {
            const due = await store.dueDeliveries(clock(), concurrency * 4 + running.size, stillHeldBack());
            // Held-back ones are left out here as well: the pause does not rest on the store alone.
            ready = due.filter((delivery) => !running.has(delivery.id) && !ended.has(delivery.id) && !isHeldBack(delivery.id));
          } finally {
            endedDuringRead = undefined;
          }
        }
        for (const delivery of ready) {
          if (running.size >= concurrency || signal.aborted) break;
          if (mayGo(delivery)) start(delivery);
        }
        ready = ready.filter((delivery) => !running.has(delivery.id));
        // Nothing in flight: every endpoint had room, so nothing was due. The round is over.
        if (running.size === 0) break;
        await sleep(options.idleMs, AbortSignal.any([signal, attemptEnded.signal]));
      }
    } finally {
      // Every attempt ends before the round does, even when reading failed (PostgreSQL away):
      // a retried round must not overlap attempts still running from this one.
      await Promise.allSettled(running.values());
    }
    if (failed !== undefined) throw failed.error;
    return made;
  };
}
