import type {
  AutoRechargeView,
  BalanceStatementView,
  BalanceView,
  DeadLetterView,
  HealthView,
  ProcessorsView,
  LedgerEntryView,
  RedriveView,
  UsageEntriesView,
  WebhookDeliveryView,
  WebhookEndpointView,
  WebhookTestResultView,
  WholeDeadLetterView,
} from '@tally/api';

export type { WebhookEventType } from '@tally/api';

/**
 * The shapes of the /v1 API that the console and the portal use, as the OpenAPI document at
 * /docs gives them (services/api/src/apiSchemas.ts and the route modules); the views @tally/api
 * exports are taken from it. Amounts are decimal
 * strings everywhere: the pages display them and send them back, and never compute with floats.
 */
export interface ApiErrorBody {
  readonly error: string;
  readonly message: string;
  /** stored_product_invalid, to an operator's GET of the product: its revision, why it fails (naming the field) and the document as stored. */
  readonly revision?: number;
  readonly reason?: string;
  readonly stored?: unknown;
}

export interface Page<T> {
  readonly items: T[];
  readonly next: string | null;
}

export interface Price {
  readonly amount: string;
  readonly currency: string;
}

export interface Bundle {
  readonly id: string;
  readonly credits: string;
  readonly price: Price;
  readonly purchaseOption?: boolean;
}

export interface ConsumptionRule {
  readonly event: string;
  readonly credits: string;
  readonly perUnitOf?: string;
  readonly where?: Readonly<Record<string, string>>;
}

export interface CreditProduct {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly consumption: ConsumptionRule[];
  readonly lowBalanceThreshold: string | null;
  readonly bundles: Bundle[];
  /** Its version: 1 as created, one more per change. Sent back as If-Match, a change applies only to this version. */
  readonly revision: number;
}

/** A stored product that fails validation: not answered as a product (GET says 409 `stored_product_invalid`) until a change repairs it. */
export interface InvalidCreditProduct {
  readonly id: string;
  readonly revision: number;
  /** Why it fails validation. */
  readonly message: string;
  /** The product as stored, whatever its shape. */
  readonly stored?: unknown;
}

/** A page of the catalog: the products, and beside them those of the same range that fail validation. */
export interface CreditProductPage extends Page<CreditProduct> {
  readonly invalid: InvalidCreditProduct[];
}

/** The API's own view types, imported (types only, erased from the bundle): one definition on both sides. */
export type CreditBalance = BalanceView;
export type LedgerEntry = LedgerEntryView;
export type BalanceStatement = BalanceStatementView;
export type UsageEntries = UsageEntriesView;
export type AutoRecharge = AutoRechargeView;
export type DeadLetter = DeadLetterView;
export type WholeDeadLetter = WholeDeadLetterView;
export type Health = HealthView;
export type Processors = ProcessorsView;
export type Redrive = RedriveView;
export type WebhookEndpoint = WebhookEndpointView;
export type WebhookDelivery = WebhookDeliveryView;
export type WebhookTestResult = WebhookTestResultView;

export interface BalanceChange {
  readonly entry: LedgerEntry;
  readonly balance: CreditBalance;
}

export interface ConsumptionBucket {
  readonly start: string;
  readonly event: string | null;
  readonly credits: string;
  /** Of `credits`, what refunds gave back. */
  readonly refunded: string;
  readonly entries: number;
}

export interface Consumption {
  readonly bucket: 'hour' | 'day';
  /** The event store position the sums reflect. */
  readonly position: string;
  readonly from: string;
  readonly to: string;
  readonly items: ConsumptionBucket[];
}

export interface CustomerSummary {
  readonly id: string;
  readonly balances: number;
  readonly since: string;
}

export interface PurchaseOption {
  readonly balanceId: string;
  readonly productId: string;
  readonly productName: string;
  readonly bundles: Bundle[];
}

export interface ConsoleSession {
  /** The key the session was opened with, by id and configured name. */
  readonly key: { readonly id: string; readonly name: string | null };
  readonly scopes: string[];
  readonly expiresAt: string;
  readonly csrfToken: string;
}

export interface PortalLink {
  readonly url: string;
  readonly token: string;
  readonly expiresAt: string;
}

export type Period = 'month' | 'year' | { readonly days: number };

export interface PlanItem {
  readonly productId: string;
  readonly creditsPerPeriod: string;
  readonly period: Period;
  readonly lowBalanceThreshold?: string | null;
}

/** The API key that made a change, by id and configured name; null in its place where none was recorded. */
export interface ActingKey {
  readonly keyId: string;
  readonly keyName: string | null;
}

export interface Plan {
  readonly id: string;
  readonly name: string;
  readonly items: PlanItem[];
  readonly createdAt: string;
  readonly createdBy: ActingKey | null;
  /** When its offer ended (no new subscriptions since); null while offered. */
  readonly retiredAt: string | null;
  readonly retiredBy: ActingKey | null;
}

export interface Subscription {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly planName: string;
  readonly startsAt: string;
  /** 1 as created, one more per change of its terms or status: also its ETag, quoted, to send as If-Match. */
  readonly version: number;
  readonly status: string;
  readonly canceledAt: string | null;
  readonly createdBy: ActingKey | null;
  readonly canceledBy: ActingKey | null;
  readonly items: Array<{
    productId: string;
    period: Period;
    creditsPerPeriod: string;
    currentPeriod: { index: number; start: string; end: string } | null;
    grantedThrough: number | null;
    /** Once canceled, the last period that grants (-1: none); null while active. */
    finalPeriod: number | null;
    /** The next period to begin and its grant, a change of terms from it included; null when none grants any more. */
    next: { index: number; start: string; creditsPerPeriod: string; lowBalanceThreshold: string | null } | null;
  }>;
  readonly overrides: Array<{
    productId: string;
    effectiveFromPeriod: number;
    creditsPerPeriod: string | null;
    lowBalanceThreshold: string | null;
    changedBy: ActingKey | null;
  }>;
}

export interface CreditOverride {
  readonly productId: string;
  readonly creditsPerPeriod?: string | null;
  readonly lowBalanceThreshold?: string | null;
}

/** A version of a credit product (`GET /v1/credit-products/{id}/revisions`). */
export interface ProductRevision {
  readonly revision: number;
  readonly changedAt: string;
  /** The API key that made the change; null for versions from before this was recorded. */
  readonly changedBy: ActingKey | null;
  /** True for a version that fails today's validation: no `product`, only why (`message`) and the document as stored. */
  readonly invalid: boolean;
  /** The version as today reads it; absent where `invalid`. */
  readonly product?: CreditProduct;
  readonly message?: string;
  readonly stored?: unknown;
}
