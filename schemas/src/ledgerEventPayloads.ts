/**
 * Ledger event payloads as stored in the event store and published to the `credit-ledger` topic.
 * Built from primitives only: amounts are decimal strings, times are ISO-8601 strings. A new
 * field is added as optional (or nullable) in a new version, so every stored event stays
 * readable; the version an event was written with is in its metadata (`schemaVersion`).
 *
 * - 1: the first payloads.
 * - 2 (holds, issue 15): CreditsHeld, HoldCaptured, HoldReleased and HoldExpired; `heldAfter` on
 *   CreditToppedUp and CreditConsumed, `overdraftLimit` on CreditBalanceOpened and
 *   CreditBalanceSettingsChanged, each left out while zero (so a version 1 event reads as the
 *   zero it stood for); CreditConsumed's `source` may be `hold`.
 */
export const LEDGER_EVENT_SCHEMA_VERSION = 2;

export const LEDGER_EVENT_TYPES = [
  'CreditBalanceOpened',
  'CreditToppedUp',
  'CreditConsumed',
  'LowBalanceWarned',
  'CreditBalanceDepleted',
  'CreditBalanceSettingsChanged',
  'CreditsHeld',
  'HoldCaptured',
  'HoldReleased',
  'HoldExpired',
] as const;

export type LedgerEventType = (typeof LEDGER_EVENT_TYPES)[number];

export interface CreditBalanceOpenedV1 {
  balanceId: string;
  customerId: string;
  productId: string;
  name: string;
  lowBalanceThreshold: string | null;
  /** Added with holds; absent means "0" (no overdraft), as it was for every balance opened before. */
  overdraftLimit?: string;
  occurredAt: string;
}

export interface PurchaseV1 {
  bundleId: string;
  quantity: number;
  unitPrice: string;
  totalPrice: string;
  currency: string;
}

export interface GrantV1 {
  subscriptionId: string;
  planId: string;
  period: number;
  periodStart: string;
  periodEnd: string;
}

/**
 * What a refund gave back for: the ledger entry (a CreditConsumed of the same balance) it refunds.
 * A type rather than an interface, so that it is a JSON object to whatever copies the payload.
 */
export type RefundV1 = { entryId: string };

export interface CreditToppedUpV1 {
  credits: string;
  source: 'starting' | 'manual' | 'purchase' | 'grant' | 'refund';
  reason: string | null;
  balanceAfter: string;
  /** Added with holds: credits held after the event; absent means "0" (stored before holds, or none open). */
  heldAfter?: string;
  purchase: PurchaseV1 | null;
  grant: GrantV1 | null;
  /** Added with refunds: set when source is refund; absent in events stored before refunds. */
  refund?: RefundV1 | null;
  occurredAt: string;
}

export interface UsageV1 {
  eventId: string;
  event: string;
  timestamp: string;
  quantity: string;
}

export interface CreditConsumedV1 {
  credits: string;
  /** `hold`: a hold's capture (added with holds). */
  source: 'usage' | 'manual' | 'hold';
  reason: string | null;
  usage: UsageV1 | null;
  balanceAfter: string;
  /** As in CreditToppedUpV1. */
  heldAfter?: string;
  occurredAt: string;
}

export interface LowBalanceWarnedV1 {
  threshold: string;
  balance: string;
  occurredAt: string;
}

export interface CreditBalanceDepletedV1 {
  balance: string;
  occurredAt: string;
}

export interface CreditBalanceSettingsChangedV1 {
  name: string;
  lowBalanceThreshold: string | null;
  /** As in CreditBalanceOpenedV1. */
  overdraftLimit?: string;
  occurredAt: string;
}

/** Credits set aside until `expiresAt` (ISO-8601) for a job about to run. */
export interface CreditsHeldV1 {
  holdId: string;
  credits: string;
  expiresAt: string;
  reference: string | null;
  balanceAfter: string;
  heldAfter: string;
  occurredAt: string;
}

/** A hold charged (`credits`, by the CreditConsumed with source "hold" just before) and the rest (`released`) freed. */
export interface HoldCapturedV1 {
  holdId: string;
  credits: string;
  released: string;
  balanceAfter: string;
  heldAfter: string;
  occurredAt: string;
}

/** A hold freed in full: released by the caller, or settled by the usage event `usageEventId`. */
export interface HoldReleasedV1 {
  holdId: string;
  credits: string;
  reason: string | null;
  usageEventId: string | null;
  balanceAfter: string;
  heldAfter: string;
  occurredAt: string;
}

/** A hold freed because nobody captured or released it by its `expiresAt`. */
export interface HoldExpiredV1 {
  holdId: string;
  credits: string;
  expiresAt: string;
  balanceAfter: string;
  heldAfter: string;
  occurredAt: string;
}

export type LedgerEventPayloadV1 =
  | { type: 'CreditBalanceOpened'; data: CreditBalanceOpenedV1 }
  | { type: 'CreditToppedUp'; data: CreditToppedUpV1 }
  | { type: 'CreditConsumed'; data: CreditConsumedV1 }
  | { type: 'LowBalanceWarned'; data: LowBalanceWarnedV1 }
  | { type: 'CreditBalanceDepleted'; data: CreditBalanceDepletedV1 }
  | { type: 'CreditBalanceSettingsChanged'; data: CreditBalanceSettingsChangedV1 }
  | { type: 'CreditsHeld'; data: CreditsHeldV1 }
  | { type: 'HoldCaptured'; data: HoldCapturedV1 }
  | { type: 'HoldReleased'; data: HoldReleasedV1 }
  | { type: 'HoldExpired'; data: HoldExpiredV1 };

/**
 * Who asked, over the API, for the command that caused an event: an API key (or a console session
 * opened with one) by its id, the first 12 hex digits of its SHA-256, never the key, and the name
 * it was configured with; or a customer on the portal. Absent for what Tally does on its own
 * (usage, grants, expiries) and for events from before it was recorded.
 */
export type LedgerActorV1 = { kind: 'key'; keyId: string; keyName: string | null } | { kind: 'portal' };

/** Metadata stored with every ledger event: who it belongs to, so readers need no lookup. */
export interface LedgerEventMetadataV1 {
  schemaVersion: number;
  balanceId: string;
  customerId: string;
  productId: string;
  /**
   * The command that caused the event (usage event id, idempotency key, grant id), for tracing.
   * Absent on a usage charge (CreditConsumed with usage), whose command id is derived from its
   * usage id and balance: @tally/ledger's causationOf gives it for any event.
   */
  causationId?: string | null;
  /**
   * Hash of the request that caused it, when an Idempotency-Key must be checked against its body;
   * on an opening, a nonce of the call, so that of two concurrent opens the loser is told apart.
   */
  requestHash?: string;
  /** Who asked for it over the API, when someone did. */
  actor?: LedgerActorV1;
}
