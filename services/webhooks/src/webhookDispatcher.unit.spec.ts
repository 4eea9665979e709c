import fc from 'fast-check';
import { isDelivered, outcomeOfFailure, type WebhookRetryPolicy } from './webhookDispatcher';

const policy = (retryForMs: number, delayMs: number): WebhookRetryPolicy => ({ retryForMs, delayAfter: () => delayMs });
const t0 = new Date('2026-11-30T12:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

describe('isDelivered', () => {
  it.each([200, 201, 202, 204, 299])('counts %i as delivered', (status) => expect(isDelivered(status)).toBe(true));
  it.each([null, 100, 301, 307, 400, 410, 429, 500, 503])('counts %p as failed (redirects are not followed)', (status) => expect(isDelivered(status)).toBe(false));
});

describe('outcomeOfFailure', () => {
  it('tries again after the backoff while the retry period lasts', () => {
    expect(outcomeOfFailure({ firstAttemptAt: t0 }, 3, at(10_000), policy(60_000, 5_000), 'HTTP 500')).toEqual({ status: 'pending', nextAttemptAt: at(15_000) });
  });

  it('counts the retry period from the first attempt (the failing one when it is the first)', () => {
    expect(outcomeOfFailure({ firstAttemptAt: null }, 1, at(0), policy(60_000, 5_000), 'HTTP 500')).toEqual({ status: 'pending', nextAttemptAt: at(5_000) });
  });

  it('gives up, with the reason, when the next attempt would fall after the retry period', () => {
    const outcome = outcomeOfFailure({ firstAttemptAt: t0 }, 9, at(58_000), policy(60_000, 5_000), 'response timeout after 400 ms');
    expect(outcome).toMatchObject({ status: 'failed' });
    expect(outcome.status === 'failed' && outcome.disableReason).toMatch(/9 attempts \(last: response timeout after 400 ms\)/);
  });

  it('never schedules an attempt past the retry period, and gives up only when the next would be', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 5_000_000 }), fc.integer({ min: 1, max: 10_000_000 }), (elapsed, delay, retryFor) => {
        const outcome = outcomeOfFailure({ firstAttemptAt: t0 }, 2, at(elapsed), policy(retryFor, delay), 'x');
        if (outcome.status === 'pending') return outcome.nextAttemptAt.getTime() - t0.getTime() <= retryFor;
        return outcome.status === 'failed' && elapsed + delay > retryFor;
      }),
    );
  });
});
