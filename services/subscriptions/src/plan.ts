import {
  type ActingKey,
  formatCredits,
  formatNullableCredits,
  isValidIdentifier,
  Micros,
  parseNonNegativeCredits,
  parsePositiveCredits,
  textLength,
  ValidationError,
} from '@tally/domain';
import { BillingPeriod, isBillingPeriod, MAX_PERIOD_DAYS } from './billingPeriod';

/**
 * A billing plan: what each of its credit products grants per billing period. Plans are
 * immutable once created, so every grant of every subscription can be recomputed from the plan
 * as it was; a different offer is a new plan.
 */
export interface PlanItem {
  readonly productId: string;
  readonly creditsPerPeriod: Micros;
  readonly period: BillingPeriod;
  /** Threshold for the balances this item opens; null takes the product's. */
  readonly lowBalanceThreshold: Micros | null;
}

export interface Plan {
  readonly id: string;
  readonly name: string;
  readonly items: readonly PlanItem[];
}

/** A plan as stored: with when it was created, and by which key (null: before migration 027, or without a key). */
export interface StoredPlan extends Plan {
  readonly createdAt: Date;
  readonly createdBy: ActingKey | null;
  /** Set once, when its offer ended: no new subscriptions from then on (migration 028). */
  readonly retiredAt: Date | null;
  readonly retiredBy: ActingKey | null;
}

/**
 * The plan as JSON carries it (and PostgreSQL stores it): amounts as decimal strings, the period
 * as `"month"`, `"year"` or `{ "days": n }` with n an integer from 1 to 3660.
 */
export interface PlanItemDto {
  readonly productId: string;
  readonly creditsPerPeriod: string;
  readonly period: BillingPeriod;
  readonly lowBalanceThreshold?: string | null;
}

export interface PlanDto {
  readonly id: string;
  readonly name: string;
  readonly items: readonly PlanItemDto[];
}

export const MAX_PLAN_ITEMS = 100;

function planItemFromDto(dto: PlanItemDto, field: string): PlanItem {
  if (!isValidIdentifier(dto.productId)) throw new ValidationError(`${field}.productId is not a valid identifier`);
  if (!isBillingPeriod(dto.period)) {
    throw new ValidationError(`${field}.period must be "month", "year" or { "days": n } with n from 1 to ${MAX_PERIOD_DAYS}`);
  }
  return {
    productId: dto.productId,
    creditsPerPeriod: parsePositiveCredits(dto.creditsPerPeriod, `${field}.creditsPerPeriod`),
    period: typeof dto.period === 'object' ? { days: dto.period.days } : dto.period,
    lowBalanceThreshold:
      dto.lowBalanceThreshold === undefined || dto.lowBalanceThreshold === null
        ? null
        : parseNonNegativeCredits(dto.lowBalanceThreshold, `${field}.lowBalanceThreshold`),
  };
}

/** Validates a plan in its JSON form; one item per product, so a grant names its product unambiguously. */
export function planFromDto(dto: PlanDto): Plan {
  if (!isValidIdentifier(dto.id)) {
    throw new ValidationError('id must be 1-128 letters, digits, "_", ".", ":" or "-", starting with a letter or digit');
  }
  if (typeof dto.name !== 'string' || dto.name.trim().length === 0 || textLength(dto.name) > 256) {
    throw new ValidationError('name must be a non-empty string of at most 256 characters');
  }
  if (!Array.isArray(dto.items) || dto.items.length === 0 || dto.items.length > MAX_PLAN_ITEMS) {
    throw new ValidationError(`items must list 1 to ${MAX_PLAN_ITEMS} credit products`);
  }
  const seen = new Set<string>();
  const items = dto.items.map((item, index) => {
    const parsed = planItemFromDto(item, `items[${index}]`);
    if (seen.has(parsed.productId)) throw new ValidationError(`items[${index}].productId "${parsed.productId}" is in the plan twice`);
    seen.add(parsed.productId);
    return parsed;
  });
  return { id: dto.id, name: dto.name, items };
}

export function planToDto(plan: Plan): PlanDto {
  return {
    id: plan.id,
    name: plan.name,
    items: plan.items.map((item) => ({
      productId: item.productId,
      creditsPerPeriod: formatCredits(item.creditsPerPeriod),
      period: item.period,
      lowBalanceThreshold: formatNullableCredits(item.lowBalanceThreshold),
    })),
  };
}

/** A stored plan as the API answers it. */
export interface PlanView extends PlanDto {
  readonly createdAt: string;
  readonly createdBy: ActingKey | null;
  readonly retiredAt: string | null;
  readonly retiredBy: ActingKey | null;
}

export function planView(plan: StoredPlan): PlanView {
  return {
    ...planToDto(plan),
    createdAt: plan.createdAt.toISOString(),
    createdBy: plan.createdBy,
    retiredAt: plan.retiredAt?.toISOString() ?? null,
    retiredBy: plan.retiredBy,
  };
}
