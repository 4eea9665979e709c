import type { Logger } from 'pino';
import { signWebhook } from './webhookSigner';
import type { WebhookSender } from './webhookSender';
import type { DueWebhookDelivery, WebhookAttemptOutcome, WebhookStore } from './webhookStore';

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
  readonly clock: () => Date;
  readonly logger: Logger;
}

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
 * One round of sending: the deliveries due now (the oldest pending one per endpoint and
 * balance, so a balance's webhooks reach an endpoint in ledger order), each signed at the
 * moment of its attempt and sent, `concurrency` at a time; each attempt is recorded with its
 * outcome before the round ends. Resolves to the number of attempts made.
 *
 * Delivery is at least once: an attempt the receiver took but whose answer was lost (a timeout,
 * a crash before recordAttempt) is made again, under the same webhook-id.
 */
export function createWebhookDispatcher(options: WebhookDispatcherOptions): (signal: AbortSignal) => Promise<number> {
  const { store, send, retry, clock } = options;
  const logger = options.logger.child({ module: 'webhook-dispatcher' });

  async function attempt(delivery: DueWebhookDelivery, signal: AbortSignal): Promise<void> {
    const number = delivery.attempts + 1;
    const startedAt = clock();
    const headers = signWebhook({ id: delivery.id, timestamp: startedAt, body: delivery.body, secrets: delivery.secrets });
    const response = await send({ url: delivery.url, headers: { ...headers }, body: delivery.body, signal });
    // Cut short by a stop: not the receiver's failure, so not an attempt; the delivery stays due.
    if (response.aborted === true) return;
    const failure = isDelivered(response.statusCode) ? undefined : (response.error ?? `HTTP ${response.statusCode}`);
    const outcome: WebhookAttemptOutcome = failure === undefined ? { status: 'succeeded' } : outcomeOfFailure(delivery, number, startedAt, retry, failure);
    if (outcome.status === 'failed') logger.warn({ endpointId: delivery.endpointId, deliveryId: delivery.id, reason: outcome.disableReason }, 'giving up a webhook delivery; disabling its endpoint');
    else if (failure !== undefined) logger.debug({ endpointId: delivery.endpointId, deliveryId: delivery.id, attempt: number, failure }, 'webhook attempt failed');
    await store.recordAttempt(
      delivery.id,
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
    const due = await store.dueDeliveries(clock(), options.concurrency * 4);
    let made = 0;
    let next = 0;
    // Each delivery is the head of its own endpoint and balance: any order, any overlap is safe.
    async function lane(): Promise<void> {
      while (!signal.aborted) {
        const delivery = due[next];
        next += 1;
        if (delivery === undefined) return;
        await attempt(delivery, signal);
        made += 1;
      }
    }
    // Every lane ends before the round does, even when one fails (PostgreSQL away): a retried
    // round must not overlap attempts still running from this one.
    const lanes = await Promise.allSettled(Array.from({ length: Math.min(options.concurrency, due.length) }, lane));
    const failed = lanes.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return made;
  };
}
