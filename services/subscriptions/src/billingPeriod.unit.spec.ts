import fc from 'fast-check';
import { BillingPeriod, duePeriods, isBillingPeriod, periodBounds, periodIndexAt, periodStart } from './billingPeriod';

const at = (iso: string) => new Date(iso);
const iso = (date: Date) => date.toISOString();

describe('periodStart', () => {
  it('clamps the day of month to short months without drifting: Jan 31 → Feb 28 → Mar 31', () => {
    const startsAt = at('2023-01-31T10:30:00.000Z');
    expect([0, 1, 2, 3, 4].map((n) => iso(periodStart(startsAt, 'month', n)))).toEqual([
      '2023-01-31T10:30:00.000Z',
      '2023-02-28T10:30:00.000Z',
      '2023-03-31T10:30:00.000Z',
      '2023-04-30T10:30:00.000Z',
      '2023-05-31T10:30:00.000Z',
    ]);
  });

  it('gives Feb 29 in leap years', () => {
    expect(iso(periodStart(at('2024-01-31T00:00:00.000Z'), 'month', 1))).toBe('2024-02-29T00:00:00.000Z');
  });

  it('crosses year ends', () => {
    expect(iso(periodStart(at('2023-11-15T00:00:00.000Z'), 'month', 3))).toBe('2024-02-15T00:00:00.000Z');
  });

  it('clamps a yearly Feb 29 anchor to Feb 28 and returns to Feb 29 in the next leap year', () => {
    const startsAt = at('2024-02-29T12:00:00.000Z');
    expect([1, 2, 4].map((n) => iso(periodStart(startsAt, 'year', n)))).toEqual([
      '2025-02-28T12:00:00.000Z',
      '2026-02-28T12:00:00.000Z',
      '2028-02-29T12:00:00.000Z',
    ]);
  });

  it('counts day periods in 24-hour UTC days', () => {
    expect(iso(periodStart(at('2024-03-30T00:00:00.000Z'), { days: 7 }, 2))).toBe('2024-04-13T00:00:00.000Z');
  });

  it('rejects a negative or fractional index', () => {
    expect(() => periodStart(at('2024-01-01T00:00:00.000Z'), 'month', -1)).toThrow(RangeError);
    expect(() => periodStart(at('2024-01-01T00:00:00.000Z'), 'month', 1.5)).toThrow(RangeError);
  });
});

describe('periodIndexAt', () => {
  const startsAt = at('2023-01-31T10:30:00.000Z');

  it('is -1 before the start and 0 at it', () => {
    expect(periodIndexAt(startsAt, 'month', at('2023-01-31T10:29:59.999Z'))).toBe(-1);
    expect(periodIndexAt(startsAt, 'month', startsAt)).toBe(0);
  });

  it('moves to the next period exactly at its clamped start', () => {
    expect(periodIndexAt(startsAt, 'month', at('2023-02-28T10:29:59.999Z'))).toBe(0);
    expect(periodIndexAt(startsAt, 'month', at('2023-02-28T10:30:00.000Z'))).toBe(1);
    expect(periodIndexAt(startsAt, 'month', at('2023-03-30T23:00:00.000Z'))).toBe(1);
    expect(periodIndexAt(startsAt, 'month', at('2023-03-31T10:30:00.000Z'))).toBe(2);
  });

  it('counts years and days', () => {
    expect(periodIndexAt(startsAt, 'year', at('2025-01-31T10:29:00.000Z'))).toBe(1);
    expect(periodIndexAt(startsAt, 'year', at('2025-01-31T10:30:00.000Z'))).toBe(2);
    expect(periodIndexAt(startsAt, { days: 10 }, at('2023-02-20T10:30:00.000Z'))).toBe(2);
  });
});

describe('duePeriods', () => {
  it('gives at most `limit` periods, the earliest first, continuing after the watermark', () => {
    const daily = { days: 1 };
    const start = at('2020-01-01T00:00:00.000Z');
    const now = at('2025-01-01T12:00:00.000Z');
    const all = duePeriods({ startsAt: start, period: daily, now, canceledAt: null, grantedThrough: -1 });
    expect(all).toHaveLength(1828);
    expect(duePeriods({ startsAt: start, period: daily, now, canceledAt: null, grantedThrough: -1, limit: 3 })).toEqual([0, 1, 2]);
    expect(duePeriods({ startsAt: start, period: daily, now, canceledAt: null, grantedThrough: 1000, limit: 2 })).toEqual([1001, 1002]);
    expect(duePeriods({ startsAt: start, period: daily, now, canceledAt: null, grantedThrough: 1825, limit: 10 })).toEqual([1826, 1827]);
    expect(duePeriods({ startsAt: start, period: daily, now, canceledAt: null, grantedThrough: -1, limit: 0 })).toEqual([]);
  });

  const startsAt = at('2024-01-15T00:00:00.000Z');

  it('catches up every started period after the watermark', () => {
    expect(duePeriods({ startsAt, period: 'month', now: at('2024-04-20T00:00:00.000Z'), canceledAt: null, grantedThrough: 0 })).toEqual([
      1, 2, 3,
    ]);
  });

  it('is empty before the start and when everything started is granted', () => {
    expect(duePeriods({ startsAt, period: 'month', now: at('2024-01-01T00:00:00.000Z'), canceledAt: null, grantedThrough: -1 })).toEqual([]);
    expect(duePeriods({ startsAt, period: 'month', now: at('2024-02-20T00:00:00.000Z'), canceledAt: null, grantedThrough: 1 })).toEqual([]);
  });

  it('stops at the period that contained the cancellation', () => {
    const canceledAt = at('2024-03-01T00:00:00.000Z');
    expect(duePeriods({ startsAt, period: 'month', now: at('2024-12-01T00:00:00.000Z'), canceledAt, grantedThrough: -1 })).toEqual([0, 1]);
  });

  it('grants nothing when canceled before the start', () => {
    const canceledAt = at('2024-01-01T00:00:00.000Z');
    expect(duePeriods({ startsAt, period: 'month', now: at('2024-12-01T00:00:00.000Z'), canceledAt, grantedThrough: -1 })).toEqual([]);
  });
});

describe('isBillingPeriod', () => {
  it.each([['month'], ['year'], [{ days: 1 }], [{ days: 3660 }]])('accepts %j', (value) => {
    expect(isBillingPeriod(value)).toBe(true);
  });

  it.each([['week'], [{ days: 0 }], [{ days: 1.5 }], [{ days: 3661 }], [{ days: 7, months: 1 }], [[7]], [null], [7]])(
    'rejects %j',
    (value) => {
      expect(isBillingPeriod(value)).toBe(false);
    },
  );
});

describe('period properties', () => {
  // Anchors from 1970 to 2200 at millisecond precision; periods of every kind.
  const anchor = fc.date({ min: new Date('1970-01-01T00:00:00.000Z'), max: new Date('2200-01-01T00:00:00.000Z'), noInvalidDate: true });
  const period: fc.Arbitrary<BillingPeriod> = fc.oneof(
    fc.constant<BillingPeriod>('month'),
    fc.constant<BillingPeriod>('year'),
    fc.integer({ min: 1, max: 400 }).map((days): BillingPeriod => ({ days })),
  );
  const index = fc.integer({ min: 0, max: 600 });

  it('periods are contiguous and strictly increasing', () => {
    fc.assert(
      fc.property(anchor, period, index, (startsAt, p, n) => {
        const current = periodBounds(startsAt, p, n);
        const next = periodBounds(startsAt, p, n + 1);
        expect(current.end.getTime()).toBe(next.start.getTime());
        expect(current.start.getTime()).toBeLessThan(current.end.getTime());
      }),
    );
  });

  it('every instant after the start lies in exactly the period periodIndexAt names', () => {
    const offset = fc.integer({ min: 0, max: 200 * 366 * 86_400_000 });
    fc.assert(
      fc.property(anchor, period, offset, (startsAt, p, ms) => {
        const instant = new Date(startsAt.getTime() + ms);
        const { start, end } = periodBounds(startsAt, p, periodIndexAt(startsAt, p, instant));
        expect(start.getTime()).toBeLessThanOrEqual(instant.getTime());
        expect(instant.getTime()).toBeLessThan(end.getTime());
      }),
    );
  });

  it('a period starts at its own index, and the millisecond before belongs to the previous one', () => {
    fc.assert(
      fc.property(anchor, period, fc.integer({ min: 1, max: 600 }), (startsAt, p, n) => {
        const start = periodStart(startsAt, p, n);
        expect(periodIndexAt(startsAt, p, start)).toBe(n);
        expect(periodIndexAt(startsAt, p, new Date(start.getTime() - 1))).toBe(n - 1);
      }),
    );
  });

  it('monthly starts keep the time of day and clamp the anchor day to the month', () => {
    fc.assert(
      fc.property(anchor, index, (startsAt, n) => {
        const start = periodStart(startsAt, 'month', n);
        const monthsApart = (start.getUTCFullYear() - startsAt.getUTCFullYear()) * 12 + start.getUTCMonth() - startsAt.getUTCMonth();
        expect(monthsApart).toBe(n);
        const lastDay = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 0)).getUTCDate();
        expect(start.getUTCDate()).toBe(Math.min(startsAt.getUTCDate(), lastDay));
        expect(start.getTime() % 86_400_000).toBe(startsAt.getTime() % 86_400_000);
      }),
    );
  });

  it('duePeriods lists each started period after the watermark once, in order, never past a cancellation', () => {
    const ms = fc.integer({ min: -86_400_000 * 40, max: 86_400_000 * 3 * 366 });
    fc.assert(
      fc.property(anchor, period, ms, fc.option(ms, { nil: null }), fc.integer({ min: -1, max: 40 }), (startsAt, p, nowMs, cancelMs, granted) => {
        const now = new Date(startsAt.getTime() + nowMs);
        const canceledAt = cancelMs === null ? null : new Date(startsAt.getTime() + cancelMs);
        const due = duePeriods({ startsAt, period: p, now, canceledAt, grantedThrough: granted });
        due.forEach((n, i) => {
          expect(n).toBe(granted + 1 + i);
          expect(periodStart(startsAt, p, n).getTime()).toBeLessThanOrEqual(now.getTime());
          if (canceledAt !== null) expect(periodStart(startsAt, p, n).getTime()).toBeLessThanOrEqual(canceledAt.getTime());
        });
        const next = (due.length > 0 ? due[due.length - 1]! : granted) + 1;
        const nextStart = periodStart(startsAt, p, next);
        // The first period not listed has not started yet, or the cancellation came before it.
        const stoppedBy = canceledAt !== null && canceledAt.getTime() < nextStart.getTime();
        expect(nextStart.getTime() > now.getTime() || stoppedBy).toBe(true);
      }),
    );
  });
});
