import { type ActingKey, isValidIdentifier, Micros, parseNonNegativeCredits, parsePositiveCredits, ValidationError } from '@tally/domain';
import { periodIndexAt, periodStart } from './billingPeriod';
import type { Plan, PlanItem } from './plan';

/** What one subscription changes about one plan item; null fields take the plan item's value. */
export interface CreditOverride {
  readonly productId: string;
  readonly creditsPerPeriod: Micros | null;
  readonly lowBalanceThreshold: Micros | null;
}

/**
 * Overrides are versioned: a change applies from the item's next period, so the grant of a
 * period that has already started (granted or not yet) always uses the terms it started with.
 */
export interface OverrideVersion extends CreditOverride {
  /** The first period (of this product's item) the version applies to. */
  readonly effectiveFromPeriod: number;
}

/** A version as stored: with the key that set it (null: before migration 027, or without a key). */
export interface StoredOverrideVersion extends OverrideVersion {
  readonly changedBy: ActingKey | null;
}

export interface Subscription {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly startsAt: Date;
  /** Set once; grants stop after the period that contained it. */
  readonly canceledAt: Date | null;
  readonly createdAt: Date;
  /** The key that created it, and the one whose cancellation stood (null: before migration 027, or without a key). */
  readonly createdBy: ActingKey | null;
  readonly canceledBy: ActingKey | null;
  readonly overrides: readonly StoredOverrideVersion[];
  /**
   * Per product, the last period known to be granted (absent: none). Only saves the scheduler
   * from asking the ledger again; a stale or lost value makes it re-send grants the ledger
   * already holds, which change nothing. A Map, not an object: a product may be called
   * "constructor", and a missing one must read as undefined, not as an inherited member.
   */
  readonly grantedThrough: ReadonlyMap<string, number>;
  /**
   * Per product, the last period a grant has reserved under the subscription's lock (at least
   * grantedThrough; absent: none): granted, or being granted, or whose append failed and is made
   * on the next run. Cancellations and changes of terms count it as granted.
   */
  readonly reservedThrough: ReadonlyMap<string, number>;
  /**
   * 1 as created, one more per change of its terms or status (a change of overrides, the
   * cancellation that stands); grants leave it alone. The API's ETag, so a change can be made
   * against the version read (If-Match) and a change is never made over one it did not see.
   */
  readonly version: number;
}

export interface CreditOverrideDto {
  readonly productId: string;
  readonly creditsPerPeriod?: string | null;
  readonly lowBalanceThreshold?: string | null;
}

export interface ItemTerms {
  readonly creditsPerPeriod: Micros;
  /**
   * The balance's warning limit: a balance the subscription opens starts with it, and one it
   * finds is set to it (see thresholdSetAt). Null sets none: an opened balance takes the product's.
   */
  readonly lowBalanceThreshold: Micros | null;
}

/** The terms of one item in one period: the override version in force then, else the plan's. */
export function termsAt(subscription: { readonly overrides: readonly OverrideVersion[] }, item: PlanItem, period: number): ItemTerms {
  let inForce: OverrideVersion | undefined;
  for (const version of subscription.overrides) {
    if (version.productId !== item.productId || version.effectiveFromPeriod > period) continue;
    if (inForce === undefined || version.effectiveFromPeriod > inForce.effectiveFromPeriod) inForce = version;
  }
  return {
    creditsPerPeriod: inForce?.creditsPerPeriod ?? item.creditsPerPeriod,
    lowBalanceThreshold: inForce?.lowBalanceThreshold ?? item.lowBalanceThreshold,
  };
}

/**
 * The warning limit the grant of `period` sets on the balance, or null for none. Period 0 sets
 * its terms' (on a balance the customer had before too); a later period only one that differs
 * from the period before's, so terms restated with other credits leave alone a limit changed on
 * the balance since. Terms without a limit set nothing.
 */
export function thresholdSetAt(subscription: { readonly overrides: readonly OverrideVersion[] }, item: PlanItem, period: number): Micros | null {
  const { lowBalanceThreshold } = termsAt(subscription, item, period);
  if (lowBalanceThreshold === null || period === 0) return lowBalanceThreshold;
  return termsAt(subscription, item, period - 1).lowBalanceThreshold === lowBalanceThreshold ? null : lowBalanceThreshold;
}

/** Validates overrides against the plan: one per product, each for a product of the plan. */
export function overridesFromDto(dtos: readonly CreditOverrideDto[], plan: Plan): CreditOverride[] {
  const products = new Set(plan.items.map((item) => item.productId));
  const seen = new Set<string>();
  return dtos.map((dto, index) => {
    const field = `overrides[${index}]`;
    if (!products.has(dto.productId)) {
      throw new ValidationError(`${field}.productId "${dto.productId}" is not a product of plan "${plan.id}"`);
    }
    if (seen.has(dto.productId)) throw new ValidationError(`${field}.productId "${dto.productId}" is overridden twice`);
    seen.add(dto.productId);
    return {
      productId: dto.productId,
      creditsPerPeriod:
        dto.creditsPerPeriod === undefined || dto.creditsPerPeriod === null
          ? null
          : parsePositiveCredits(dto.creditsPerPeriod, `${field}.creditsPerPeriod`),
      lowBalanceThreshold:
        dto.lowBalanceThreshold === undefined || dto.lowBalanceThreshold === null
          ? null
          : parseNonNegativeCredits(dto.lowBalanceThreshold, `${field}.lowBalanceThreshold`),
    };
  });
}

/**
 * The versions that replace a subscription's overrides from each item's next period on: one
 * per plan item, so a product left out of `overrides` goes back to the plan's terms. Before
 * the start the next period is period 0, and the versions replace the initial ones. Never from a
 * period reserved: a scheduler whose clock runs ahead of this one's may have granted the next
 * period already, or be granting it, on the terms it read when it reserved it, and a grant is
 * never made again (its retry after a failure is a replay).
 */
export function nextOverrideVersions(
  subscription: Pick<Subscription, 'startsAt' | 'reservedThrough'>,
  plan: Plan,
  overrides: readonly CreditOverride[],
  now: Date,
): OverrideVersion[] {
  const byProduct = new Map(overrides.map((override) => [override.productId, override]));
  return plan.items.map((item) => ({
    productId: item.productId,
    creditsPerPeriod: byProduct.get(item.productId)?.creditsPerPeriod ?? null,
    lowBalanceThreshold: byProduct.get(item.productId)?.lowBalanceThreshold ?? null,
    effectiveFromPeriod: Math.max(periodIndexAt(subscription.startsAt, item.period, now), subscription.reservedThrough.get(item.productId) ?? -1) + 1,
  }));
}

/**
 * The instant a cancellation asked at `now` stands at: `now`, or the start of a period already
 * reserved if that is later. A canceled subscription grants through the period containing its
 * cancellation, so every period reserved is in it: a scheduler whose clock runs ahead of this
 * one's may have reserved (and granted, or be granting) a period that, by `now`, has not begun.
 * Its clock had reached that start, so a period of another item beginning by then is due too.
 * Asked under the subscription's lock, it sees every grant decided before: each reserves its
 * period under that lock before it is made (SubscriptionStore.reserveGrant), and one decided after
 * sees the cancellation. A reserved period whose append failed is granted on a later run, and is
 * never after the final one.
 */
export function cancellationInstant(subscription: Pick<Subscription, 'startsAt' | 'reservedThrough'>, plan: Plan, now: Date): Date {
  let at = now.getTime();
  for (const item of plan.items) {
    const reserved = subscription.reservedThrough.get(item.productId);
    if (reserved !== undefined && reserved > periodIndexAt(subscription.startsAt, item.period, now)) {
      at = Math.max(at, periodStart(subscription.startsAt, item.period, reserved).getTime());
    }
  }
  return new Date(at);
}

/**
 * How far back a new subscription may start, in calendar years. Every period since the start is
 * granted on the customer's balance: a start in year 26 (a typo for 2026) would be 2,000 yearly
 * grants, 24,000 monthly ones. Ten years keeps migrating customers with their history (a daily
 * plan backdated five years is 1,827 periods) and bounds any plan: a daily one at 3,653 periods.
 */
export const MAX_BACKDATE_YEARS = 10;

/** How far ahead a new subscription may start, in calendar years: a start in year 9999 is a typo, not a plan. */
export const MAX_START_AHEAD_YEARS = 1;

function yearsFrom(at: Date, years: number): Date {
  const moved = new Date(at.getTime());
  moved.setUTCFullYear(at.getUTCFullYear() + years);
  return moved;
}

/** Refuses a start more than MAX_BACKDATE_YEARS before `now` or more than MAX_START_AHEAD_YEARS after it. */
export function assertStartWithinBounds(startsAt: Date, now: Date): void {
  if (startsAt.getTime() < yearsFrom(now, -MAX_BACKDATE_YEARS).getTime()) {
    throw new ValidationError(
      `startsAt ${startsAt.toISOString()} is more than ${MAX_BACKDATE_YEARS} years before now (${now.toISOString()}): a subscription may start at most ${MAX_BACKDATE_YEARS} years back`,
    );
  }
  if (startsAt.getTime() > yearsFrom(now, MAX_START_AHEAD_YEARS).getTime()) {
    throw new ValidationError(
      `startsAt ${startsAt.toISOString()} is more than ${MAX_START_AHEAD_YEARS} year after now (${now.toISOString()}): a subscription may start at most ${MAX_START_AHEAD_YEARS} year ahead`,
    );
  }
}

export function assertSubscriptionId(id: string): string {
  if (!isValidIdentifier(id)) {
    throw new ValidationError('id must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit');
  }
  return id;
}
