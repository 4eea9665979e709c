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
  /** A canceled subscription's last granted period (-1: none); null while active. */
  readonly finalPeriod: number | null;
  /**
   * The next period to begin (period 0 before the start) and its terms, overrides applied: what
   * its grant will be, a change of terms from the next period included. Null when there is none:
   * a canceled subscription grants nothing after its final period.
   */
  readonly next: NextPeriodView | null;
}

interface NextPeriodView {
  readonly index: number;
  readonly start: string;
  readonly creditsPerPeriod: string;
  readonly lowBalanceThreshold: string | null;
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
      return {
        productId: item.productId,
        period: item.period,
        currentPeriod: bounds === null ? null : { index, start: bounds.start.toISOString(), end: bounds.end.toISOString() },
        creditsPerPeriod: formatCredits(terms.creditsPerPeriod),
        lowBalanceThreshold: formatNullableCredits(terms.lowBalanceThreshold),
        grantedThrough: subscription.grantedThrough.get(item.productId) ?? null,
        finalPeriod: final,
        next:
          final !== null && nextIndex > final
            ? null
            : {
                index: nextIndex,
                start: periodStart(startsAt, item.period, nextIndex).toISOString(),
                creditsPerPeriod: formatCredits(nextTerms.creditsPerPeriod),
                lowBalanceThreshold: formatNullableCredits(nextTerms.lowBalanceThreshold),
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
