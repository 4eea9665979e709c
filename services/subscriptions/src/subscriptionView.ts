import { type ActingKey, formatCredits, formatNullableCredits } from '@tally/domain';
import { BillingPeriod, finalPeriod, periodBounds, periodIndexAt, periodStart } from './billingPeriod';
import { termsAt } from './subscription';
import type { SubscriptionDetails } from './subscriptionService';

interface PeriodView {
  readonly index: number;
  readonly start: string;
  readonly end: string;
}

export interface SubscriptionItemView {
  readonly productId: string;
  readonly period: BillingPeriod;
  /** The period in progress; null before the start. */
  readonly currentPeriod: PeriodView | null;
  /** Terms of the current period (of period 0 before the start): overrides applied. */
  readonly creditsPerPeriod: string;
  readonly lowBalanceThreshold: string | null;
  /** The last period known to be granted; null when none is. */
  readonly grantedThrough: number | null;
  /**
   * The last period a grant has reserved (at least grantedThrough; null: none): granted, being
   * granted, or whose grant failed and is made again. Its terms are fixed (a change of terms
   * applies from the period after) and a cancellation's final period is at least it.
   */
  readonly reservedThrough: number | null;
  /** A canceled subscription's last granted period (-1: none); null while active. */
  readonly finalPeriod: number | null;
  /**
   * When the final period ends (null while active, or when none grants): where a subscription
   * replacing this one starts to grant none of its periods twice. Not the current period's end
   * when a grant has reserved a later one (a scheduler whose clock runs ahead).
   */
  readonly finalPeriodEnd: string | null;
  /**
   * The next period to begin (period 0 before the start) and its terms, overrides applied: what
   * its grant will be. Null when there is none: a canceled subscription grants nothing after its
   * final period.
   */
  readonly next: NextPeriodView | null;
}

interface NextPeriodView {
  readonly index: number;
  readonly start: string;
  readonly creditsPerPeriod: string;
  readonly lowBalanceThreshold: string | null;
  /**
   * A grant has reserved it already (reservedThrough): its terms are the ones shown whatever a
   * change of terms says, which applies from the period after. False: a change from the next
   * period shows here.
   */
  readonly reserved: boolean;
}

export interface SubscriptionView {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly planName: string;
  readonly startsAt: string;
  /** Also the ETag (quoted): 1 as created, one more per change of terms or status. */
  readonly version: number;
  readonly status: 'active' | 'canceled';
  readonly canceledAt: string | null;
  readonly createdAt: string;
  readonly createdBy: ActingKey | null;
  readonly canceledBy: ActingKey | null;
  readonly items: readonly SubscriptionItemView[];
  /** Every override version, oldest period first: a null amount takes the plan's. */
  readonly overrides: ReadonlyArray<{
    readonly productId: string;
    readonly effectiveFromPeriod: number;
    readonly creditsPerPeriod: string | null;
    readonly lowBalanceThreshold: string | null;
    readonly changedBy: ActingKey | null;
  }>;
}

/** The subscription as the API answers it: stored facts plus each item's standing at `asOf`. */
export function subscriptionView({ subscription, plan, asOf }: SubscriptionDetails): SubscriptionView {
  const { startsAt, canceledAt } = subscription;
  return {
    id: subscription.id,
    customerId: subscription.customerId,
    planId: subscription.planId,
    planName: plan.name,
    startsAt: startsAt.toISOString(),
    version: subscription.version,
    status: canceledAt === null ? 'active' : 'canceled',
    canceledAt: canceledAt === null ? null : canceledAt.toISOString(),
    createdAt: subscription.createdAt.toISOString(),
    createdBy: subscription.createdBy,
    canceledBy: subscription.canceledBy,
    items: plan.items.map((item) => {
      const index = periodIndexAt(startsAt, item.period, asOf);
      const bounds = index < 0 ? null : periodBounds(startsAt, item.period, index);
      const terms = termsAt(subscription, item, Math.max(0, index));
      const final = finalPeriod(startsAt, item.period, canceledAt);
      const nextIndex = index + 1;
      const nextTerms = termsAt(subscription, item, nextIndex);
      const reserved = subscription.reservedThrough.get(item.productId) ?? null;
      return {
        productId: item.productId,
        period: item.period,
        currentPeriod: bounds === null ? null : { index, start: bounds.start.toISOString(), end: bounds.end.toISOString() },
        creditsPerPeriod: formatCredits(terms.creditsPerPeriod),
        lowBalanceThreshold: formatNullableCredits(terms.lowBalanceThreshold),
        grantedThrough: subscription.grantedThrough.get(item.productId) ?? null,
        reservedThrough: reserved,
        finalPeriod: final,
        finalPeriodEnd: final === null || final < 0 ? null : periodBounds(startsAt, item.period, final).end.toISOString(),
        next:
          final !== null && nextIndex > final
            ? null
            : {
                index: nextIndex,
                start: periodStart(startsAt, item.period, nextIndex).toISOString(),
                creditsPerPeriod: formatCredits(nextTerms.creditsPerPeriod),
                lowBalanceThreshold: formatNullableCredits(nextTerms.lowBalanceThreshold),
                reserved: reserved !== null && nextIndex <= reserved,
              },
      };
    }),
    overrides: [...subscription.overrides]
      .sort((a, b) => a.effectiveFromPeriod - b.effectiveFromPeriod || a.productId.localeCompare(b.productId))
      .map((version) => ({
        productId: version.productId,
        effectiveFromPeriod: version.effectiveFromPeriod,
        creditsPerPeriod: formatNullableCredits(version.creditsPerPeriod),
        lowBalanceThreshold: formatNullableCredits(version.lowBalanceThreshold),
        changedBy: version.changedBy,
      })),
  };
}
