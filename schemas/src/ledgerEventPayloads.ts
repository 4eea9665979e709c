/**
 * Ledger event payloads, version 1, as stored in the event store and published to the
 * `credit-ledger` topic. Built from primitives only: amounts are decimal strings, times are
 * ISO-8601 strings. A new field is added as optional (or nullable) in a new version, so
 * every stored event stays readable.
 */
export const LEDGER_EVENT_SCHEMA_VERSION = 1;

export const LEDGER_EVENT_TYPES = [
  'CreditBalanceOpened',
  'CreditToppedUp',
  'CreditConsumed',
  'LowBalanceWarned',
  'CreditBalanceDepleted',
  'CreditBalanceSettingsChanged',
] as const;

export type LedgerEventType = (typeof LEDGER_EVENT_TYPES)[number];

export interface CreditBalanceOpenedV1 {
  balanceId: string;
  customerId: string;
  productId: string;
  name: string;
  lowBalanceThreshold: string | null;
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

export interface CreditToppedUpV1 {
  credits: string;
  source: 'starting' | 'manual' | 'purchase' | 'grant';
  reason: string | null;
  balanceAfter: string;
  purchase: PurchaseV1 | null;
  grant: GrantV1 | null;
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
  source: 'usage' | 'manual';
  reason: string | null;
  usage: UsageV1 | null;
  balanceAfter: string;
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
  occurredAt: string;
}

export type LedgerEventPayloadV1 =
  | { type: 'CreditBalanceOpened'; data: CreditBalanceOpenedV1 }
  | { type: 'CreditToppedUp'; data: CreditToppedUpV1 }
  | { type: 'CreditConsumed'; data: CreditConsumedV1 }
  | { type: 'LowBalanceWarned'; data: LowBalanceWarnedV1 }
  | { type: 'CreditBalanceDepleted'; data: CreditBalanceDepletedV1 }
  | { type: 'CreditBalanceSettingsChanged'; data: CreditBalanceSettingsChangedV1 };

/** Metadata stored with every ledger event: who it belongs to, so readers need no lookup. */
export interface LedgerEventMetadataV1 {
  schemaVersion: number;
  balanceId: string;
  customerId: string;
  productId: string;
  /** The command that caused the event (usage event id, idempotency key, grant id), for tracing. */
  causationId: string | null;
  /**
   * Hash of the request that caused it, when an Idempotency-Key must be checked against its body;
   * on an opening, a nonce of the call, so that of two concurrent opens the loser is told apart.
   */
  requestHash?: string;
}
