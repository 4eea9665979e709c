/**
 * Billing periods as pure arithmetic: no I/O, no clock. Every time is a UTC instant; the
 * subscription's `startsAt` anchors period 0, and period n starts at
 *
 * - `month`: startsAt plus n calendar months, same time of day, the day of month clamped to the
 *   month's length: Jan 31 → Feb 28 (Feb 29 in a leap year) → Mar 31 → Apr 30 → May 31.
 *   Each start is computed from the anchor, never from the previous start, so one short
 *   month does not pull every later period to the 28th.
 * - `year`: startsAt plus 12n months, by the same rule (Feb 29 → Feb 28 in common years).
 * - `{ days: d }`: startsAt plus n·d·24 hours (UTC days have no DST shifts).
 *
 * Period n covers [start(n), start(n + 1)): its end is the next period's start.
 */
export type BillingPeriod = 'month' | 'year' | { readonly days: number };

interface PeriodBounds {
  /** 0-based: period 0 starts at the subscription's startsAt. */
  readonly index: number;
  readonly start: Date;
  /** Exclusive: the start of period index + 1. */
  readonly end: Date;
}

/** Largest `days` a period may span: ten years keeps every boundary inside Date's range. */
export const MAX_PERIOD_DAYS = 3660;

const MS_PER_DAY = 86_400_000;

export function isBillingPeriod(value: unknown): value is BillingPeriod {
  if (value === 'month' || value === 'year') return true;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  const days = (value as { days?: unknown }).days;
  return keys.length === 1 && Number.isInteger(days) && (days as number) >= 1 && (days as number) <= MAX_PERIOD_DAYS;
}

function daysInMonth(year: number, month: number): number {
  const probe = new Date(0);
  probe.setUTCFullYear(year, month + 1, 0);
  return probe.getUTCDate();
}

/** The anchor moved by whole calendar months, day of month clamped, time of day kept. */
function addMonthsClamped(anchor: Date, months: number): Date {
  const total = anchor.getUTCMonth() + months;
  const year = anchor.getUTCFullYear() + Math.floor(total / 12);
  const month = ((total % 12) + 12) % 12;
  const result = new Date(anchor.getTime());
  // setUTCFullYear rather than Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  result.setUTCFullYear(year, month, Math.min(anchor.getUTCDate(), daysInMonth(year, month)));
  return result;
}

function monthsPerPeriod(period: 'month' | 'year'): number {
  return period === 'month' ? 1 : 12;
}

export function periodStart(startsAt: Date, period: BillingPeriod, index: number): Date {
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`period index must be a non-negative integer; got ${index}`);
  if (typeof period === 'object') return new Date(startsAt.getTime() + index * period.days * MS_PER_DAY);
  return addMonthsClamped(startsAt, index * monthsPerPeriod(period));
}

export function periodBounds(startsAt: Date, period: BillingPeriod, index: number): PeriodBounds {
  return { index, start: periodStart(startsAt, period, index), end: periodStart(startsAt, period, index + 1) };
}

/** The index of the period that contains `at`; -1 when `at` is before startsAt. */
export function periodIndexAt(startsAt: Date, period: BillingPeriod, at: Date): number {
  if (at.getTime() < startsAt.getTime()) return -1;
  if (typeof period === 'object') return Math.floor((at.getTime() - startsAt.getTime()) / (period.days * MS_PER_DAY));
  const step = monthsPerPeriod(period);
  const monthsApart =
    (at.getUTCFullYear() - startsAt.getUTCFullYear()) * 12 + (at.getUTCMonth() - startsAt.getUTCMonth());
  // The candidate starts in the same calendar month as `at` (or earlier, for years), so it is
  // either `at`'s period or, when `at` comes earlier in that month than the start, the next one.
  const candidate = Math.floor(monthsApart / step);
  return periodStart(startsAt, period, candidate).getTime() <= at.getTime() ? candidate : candidate - 1;
}

interface DuePeriodsInput {
  readonly startsAt: Date;
  readonly period: BillingPeriod;
  readonly now: Date;
  /** A canceled subscription grants through the period that contained the cancellation, no later. */
  readonly canceledAt: Date | null;
  /** The last period known to be granted (-1: none). Only an optimisation: granting again is a no-op. */
  readonly grantedThrough: number;
  /** At most this many periods, the earliest first (default: all); the rest are due next time. */
  readonly limit?: number;
}

/** The last period that grants at `now`: the current one, or a canceled subscription's final one if earlier (-1: none). */
export function lastDuePeriod(input: Pick<DuePeriodsInput, 'startsAt' | 'period' | 'now' | 'canceledAt'>): number {
  const current = periodIndexAt(input.startsAt, input.period, input.now);
  const final = finalPeriod(input.startsAt, input.period, input.canceledAt);
  return final === null ? current : Math.min(current, final);
}

/**
 * The periods to grant at `now`, in order: every period that has started and is not known to be
 * granted, or the first `limit` of them. A subscription backdated by years has thousands.
 */
export function duePeriods(input: DuePeriodsInput): number[] {
  const last = lastDuePeriod(input);
  const first = Math.max(0, input.grantedThrough + 1);
  const end = input.limit === undefined ? last : Math.min(last, first + Math.max(0, input.limit) - 1);
  const due: number[] = [];
  for (let index = first; index <= end; index += 1) due.push(index);
  return due;
}

/** The last period a canceled subscription grants (-1: none); null while it is not canceled. */
export function finalPeriod(startsAt: Date, period: BillingPeriod, canceledAt: Date | null): number | null {
  return canceledAt === null ? null : periodIndexAt(startsAt, period, canceledAt);
}
