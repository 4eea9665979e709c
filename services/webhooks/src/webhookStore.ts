import type { ActingKey } from '@tally/domain';
import type { WebhookEventType } from '@tally/schemas';

export interface WebhookEndpoint {
  readonly id: string;
  readonly url: string;
  readonly description: string | null;
  readonly events: readonly WebhookEventType[];
  readonly secret: string;
  /** The secret a rotation replaced, while it is still signed with. */
  readonly previousSecret: { readonly secret: string; readonly until: Date } | null;
  /** Only ledger events after this global position reach the endpoint. */
  readonly afterPosition: bigint;
  readonly disabled: { readonly at: Date; readonly reason: string } | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** The key that registered it (null: before migration 027, or without a key). */
  readonly createdBy: ActingKey | null;
  /** The key of the last change (updatedAt); null when there was none, or Tally made it (disabling after failed retries). */
  readonly updatedBy: ActingKey | null;
}

export interface NewWebhookEndpoint {
  readonly id: string;
  readonly url: string;
  readonly description: string | null;
  readonly events: readonly WebhookEventType[];
  readonly secret: string;
  readonly afterPosition: bigint;
  readonly createdBy?: ActingKey;
}

export interface WebhookEndpointChanges {
  readonly url?: string;
  readonly description?: string | null;
  readonly events?: readonly WebhookEventType[];
  /**
   * true re-enables a disabled endpoint: its pending and given-up (failed) deliveries resume, each
   * balance's in ledger order, with a fresh retry period (not a given-up one whose balance had a
   * later delivery succeed since: it stays failed); false disables it by hand.
   */
  readonly enabled?: boolean;
}

export type WebhookDeliveryStatus = 'pending' | 'succeeded' | 'failed';

export interface NewWebhookDelivery {
  /** The webhook-id (webhookMessageId). */
  readonly id: string;
  readonly endpointId: string;
  readonly ledgerEventId: string;
  readonly balanceId: string;
  readonly position: bigint;
  readonly eventType: WebhookEventType;
  readonly body: string;
}

export interface WebhookAttempt {
  readonly attempt: number;
  readonly startedAt: Date;
  readonly durationMs: number;
  /** null when no response came. */
  readonly statusCode: number | null;
  readonly error: string | null;
  /** At most the first KiB of the body. */
  readonly responseBody: string | null;
}

export interface WebhookDelivery {
  readonly id: string;
  readonly endpointId: string;
  readonly ledgerEventId: string;
  readonly balanceId: string;
  readonly position: bigint;
  readonly eventType: string;
  readonly status: WebhookDeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: Date | null;
  readonly firstAttemptAt: Date | null;
  readonly deliveredAt: Date | null;
  readonly createdAt: Date;
}

/** A delivery due now, with what sending it needs. */
export interface DueWebhookDelivery {
  readonly id: string;
  readonly endpointId: string;
  readonly url: string;
  /** The endpoint's secret first, then the previous one while its grace period lasts. */
  readonly secrets: readonly string[];
  readonly body: string;
  readonly attempts: number;
  readonly firstAttemptAt: Date | null;
  /**
   * The attempts since the retry period began (firstAttemptAt): fewer than `attempts` after a
   * manual retry or re-enabling started a new one. The backoff counts these, so the first retry
   * of a new period waits seconds, not the hour its total would.
   */
  readonly attemptsThisPeriod: number;
}

/** What operators watch of the deliveries (tally_webhooks_endpoints_disabled, tally_webhooks_oldest_pending_seconds). */
export interface WebhookDeliveryHealth {
  /** Endpoints Tally disabled after giving a delivery up. */
  readonly disabledByTally: number;
  /** Endpoints paused by a key (`enabled: false`) that Tally had not disabled. */
  readonly paused: number;
  /** When the oldest pending delivery of an enabled endpoint was recorded; null when there is none. */
  readonly oldestPendingAt: Date | null;
}

/** What became of an attempt: delivered, to be tried again, or given up on (which disables the endpoint). */
export type WebhookAttemptOutcome =
  | { readonly status: 'succeeded' }
  | { readonly status: 'pending'; readonly nextAttemptAt: Date }
  | { readonly status: 'failed'; readonly disableReason: string };

export interface WebhookStore {
  createEndpoint(endpoint: NewWebhookEndpoint): Promise<WebhookEndpoint>;
  /** In id order, `limit` at most, after the `after` id. */
  listEndpoints(options: { readonly limit: number; readonly after?: string }): Promise<WebhookEndpoint[]>;
  getEndpoint(id: string): Promise<WebhookEndpoint | undefined>;
  updateEndpoint(id: string, changes: WebhookEndpointChanges, updatedBy?: ActingKey): Promise<WebhookEndpoint | undefined>;
  /** Deletes it and its deliveries; false when there was none. */
  deleteEndpoint(id: string): Promise<boolean>;
  /** Replaces the secret, keeping the old one valid until `previousUntil`. */
  rotateSecret(id: string, secret: string, previousUntil: Date, updatedBy?: ActingKey): Promise<WebhookEndpoint | undefined>;
  /**
   * Every endpoint, disabled ones too: deliveries are recorded for all of them, and a disabled
   * endpoint's wait (unsent) until it is enabled again, so pausing one, or one disabled after
   * failing for days, loses no event.
   */
  allEndpoints(): Promise<WebhookEndpoint[]>;
  /** Records deliveries, due at `now`; one already recorded (same id) is left as it is. */
  recordDeliveries(deliveries: readonly NewWebhookDelivery[], now: Date): Promise<void>;
  /**
   * Deliveries to send now, `limit` at most: for each endpoint (not disabled) and balance only
   * the oldest pending one, and only when it is due. A delivery waiting for its retry holds back
   * the later ones of its balance to that endpoint, and nothing else. The `excluding` ids (ones
   * the caller will not send now) are left out before the limit and the endpoints' turns, still
   * holding back their balance's later ones.
   */
  dueDeliveries(now: Date, limit: number, excluding?: readonly string[]): Promise<DueWebhookDelivery[]>;
  /** Keeps an attempt and its outcome together (one transaction). */
  recordAttempt(deliveryId: string, attempt: WebhookAttempt, outcome: WebhookAttemptOutcome): Promise<void>;
  /** An endpoint's deliveries, newest first, `limit` at most, before the position `before`. */
  listDeliveries(
    endpointId: string,
    options: { readonly limit: number; readonly before?: bigint },
  ): Promise<Array<WebhookDelivery & { readonly attemptLog: readonly WebhookAttempt[] }>>;
  /**
   * Makes a delivery of the endpoint pending and due now, with a fresh retry period; undefined
   * when the endpoint has no such delivery.
   */
  retryDelivery(endpointId: string, deliveryId: string, now: Date): Promise<WebhookDelivery | undefined>;
  /**
   * Deletes up to `limit` deliveries that succeeded before `before`, oldest first, with their
   * attempts; returns how many. Pending and given-up ones are kept: they are still to be sent.
   */
  deleteDelivered(before: Date, limit: number): Promise<number>;
  /** The disabled endpoints, by who disabled them, and the oldest delivery still to send to an enabled one. */
  deliveryHealth(): Promise<WebhookDeliveryHealth>;
}
