import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { formatCredits, parseCredits } from '@tally/domain';
import type { LedgerService } from '@tally/ledger';
import { waitFor } from '@tally/test-support';
import pino from 'pino';
import { periodIndexAt, periodStart } from './billingPeriod';
import { createGrantScheduler, type GrantScheduler } from './grantScheduler';
import { createSubscriptionsHarness, grantsIn, SubscriptionsHarness } from './testing/subscriptionsHarness';

jest.setTimeout(120_000);

const START = '2024-01-31T09:00:00.000Z';
const startsAt = new Date(START);
const inPeriod = (n: number) => new Date(periodStart(startsAt, 'month', n).getTime() + 1000);

describe('grant scheduler with a test clock', () => {
  let h: SubscriptionsHarness;

  // A harness (its own schema, its clock at START) per test: a scheduler's run covers every
  // subscription in the schema, so a test's counts would otherwise take in what earlier tests left due.
  beforeEach(async () => {
    h = await createSubscriptionsHarness('subs_scheduler', START);
  });

  afterEach(async () => {
    await h?.close();
  });

  async function subscribe(credits: string, overrideCredits?: string) {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Monthly', items: [{ productId: product.id, creditsPerPeriod: credits, period: 'month' }] });
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({
      customerId,
      planId: plan.id,
      startsAt,
      overrides: overrideCredits === undefined ? [] : [{ productId: product.id, creditsPerPeriod: overrideCredits }],
    });
    const grants = async () => {
      const ref = await h.balanceRegistry.findBalance(customerId, product.id);
      return ref === undefined ? [] : grantsIn(await h.ledgerOf(ref.id));
    };
    return { product, subscription, customerId, grants };
  }

  it('walks twelve monthly periods into exactly twelve grants with two schedulers, one restarted midway', async () => {
    const { grants, subscription } = await subscribe('100');
    // Both tick on their own timers, racing each other on every period.
    let first: GrantScheduler = h.newScheduler(5);
    const second = h.newScheduler(7);
    first.start();
    second.start();
    try {
      for (let n = 1; n < 12; n += 1) {
        h.clock.set(inPeriod(n));
        if (n === 6) {
          // A restart: the old process stops, a new one starts with nothing in memory.
          await first.stop();
          first = h.newScheduler(5);
          first.start();
        }
        await waitFor(async () => (await grants()).length === n + 1, { description: `the grant of period ${n}`, timeoutMs: 30_000, intervalMs: 20 });
      }
      // Both keep ticking in the last period; they must find nothing more to grant.
      await Promise.all([first.runOnce(), second.runOnce(), first.runOnce()]);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }

    const granted = await grants();
    expect(granted.map((g) => g.period)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(granted.every((g) => g.subscriptionId === subscription.id && g.credits === parseCredits('100'))).toBe(true);
    const [balance] = await h.balanceRegistry.listCustomerBalances(subscription.customerId);
    expect(formatCredits((await h.ledger.getBalance(balance!.id)).balance.balance)).toBe('1200');
  });

  it('never grants twice when schedulers race on the same periods with no watermark to go by', async () => {
    const { grants, subscription } = await subscribe('10');
    h.clock.set(inPeriod(11));
    // Four concurrent passes over eleven due periods, and the watermark wiped between rounds so
    // every pass re-sends every grant: only the ledger's deterministic ids keep them single.
    let granted = 0;
    for (let round = 0; round < 2; round += 1) {
      await h.db.pool.query('DELETE FROM subscription_grant_watermarks WHERE subscription_id = $1', [subscription.id]);
      const summaries = await Promise.all([1, 2, 3, 4].map(() => h.newScheduler().runOnce()));
      expect(summaries.every((s) => s.failed === 0)).toBe(true);
      granted += summaries.reduce((sum, s) => sum + s.granted, 0);
    }
    // Period 0 was granted by the subscription's creation; 1-11 once each across 8 passes.
    expect(granted).toBe(11);
    expect((await grants()).map((g) => g.period)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it("names the period a grant that always fails cannot grant, every run, records nothing granted, and lets the subscription's other items go on", async () => {
    const refused = await h.createProduct();
    const other = await h.createProduct();
    const plan = await h.service.createPlan({
      name: 'Two products',
      items: [
        { productId: refused.id, creditsPerPeriod: '10', period: 'month' },
        { productId: other.id, creditsPerPeriod: '20', period: 'month' },
      ],
    });
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    // A ledger that refuses every grant of one product (the first item, so before the other).
    const refusal = new Error('the ledger refuses this grant');
    const refusing: LedgerService = {
      ...h.ledger,
      grant: async (balanceId, grant) => {
        if (grant.productId === refused.id) throw refusal;
        return h.ledger.grant(balanceId, grant);
      },
    };
    const warnings: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _encoding, done) => done(void warnings.push(JSON.parse(chunk.toString()) as Record<string, unknown>)) }));
    const scheduler = createGrantScheduler({ subscriptions: h.subscriptions, ledger: refusing, balanceRegistry: h.balanceRegistry, clock: h.clock, intervalMs: 60_000, logger });

    h.clock.set(inPeriod(1));
    for (const run of [1, 2]) {
      warnings.length = 0;
      expect({ run, summary: await scheduler.runOnce() }).toMatchObject({ run, summary: { failed: 1, granted: run === 1 ? 1 : 0 } });
      expect(warnings).toEqual([
        expect.objectContaining({ subscriptionId: subscription.id, productId: refused.id, period: 1, reserved: true, err: expect.objectContaining({ message: refusal.message }) }),
      ]);
    }

    const stored = (await h.subscriptions.getSubscription(subscription.id))!;
    expect(stored.grantedThrough).toEqual(new Map([[refused.id, 0], [other.id, 1]]));
    expect(stored.reservedThrough).toEqual(new Map([[refused.id, 1], [other.id, 1]]));
    const grantsOf = async (productId: string) => grantsIn(await h.ledgerOf((await h.balanceRegistry.findBalance(customerId, productId))!.id)).map((g) => g.period);
    expect(await grantsOf(refused.id)).toEqual([0]);
    expect(await grantsOf(other.id)).toEqual([0, 1]);
  });

  it('catches up on every period missed while down, in order, with the terms each period had', async () => {
    const { grants, subscription, product } = await subscribe('100', '150');
    h.clock.set(inPeriod(2));
    await h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '300' }]);

    h.clock.set(inPeriod(5));
    const summary = await h.newScheduler().runOnce();

    expect(summary.granted).toBe(5);
    expect((await grants()).map((g) => [g.period, formatCredits(g.credits)])).toEqual([
      [0, '150'],
      [1, '150'],
      [2, '150'],
      [3, '300'],
      [4, '300'],
      [5, '300'],
    ]);
  });

  it('started, runs the next bounded run at once while a subscription is behind, without the interval', async () => {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Daily', items: [{ productId: product.id, creditsPerPeriod: '1', period: { days: 1 } }] });
    const now = new Date(startsAt.getTime() + 400 * 86_400_000 + 60_000);
    h.clock.set(now);
    const { subscription } = await h.service.createSubscription({ customerId: `customer-${randomUUID()}`, planId: plan.id, startsAt });
    const grantedThrough = async () => (await h.subscriptions.getSubscription(subscription.id))!.grantedThrough.get(product.id);
    expect(await grantedThrough()).toBe(11);
    // An hour between runs: only running again at once while behind brings it up to date in time.
    const scheduler = h.newScheduler(3_600_000, 50);
    scheduler.start();
    try {
      await waitFor(async () => (await grantedThrough()) === 400, { description: 'period 400 granted', timeoutMs: 60_000, intervalMs: 50 });
    } finally {
      await scheduler.stop();
    }
  });

  it('stops between periods when stopped mid-run, and a scheduler started again grants the rest, each period once', async () => {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Daily', items: [{ productId: product.id, creditsPerPeriod: '1', period: { days: 1 } }] });
    h.clock.set(new Date(startsAt.getTime() + 800 * 86_400_000 + 60_000));
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const grantedThrough = async () => (await h.subscriptions.getSubscription(subscription.id))!.grantedThrough.get(product.id)!;
    const inline = await grantedThrough();

    // One run would grant all 801 periods: its bound is above them.
    const first = h.newScheduler(3_600_000, 5000);
    first.start();
    await waitFor(async () => (await grantedThrough()) > inline, { description: 'the run under way', timeoutMs: 30_000, intervalMs: 5 });
    await first.stop();
    const whenStopped = await grantedThrough();
    expect(whenStopped).toBeLessThan(800);

    // A new scheduler picks up where the watermark is.
    const second = h.newScheduler(3_600_000, 5000);
    second.start();
    try {
      await waitFor(async () => (await grantedThrough()) === 800, { description: 'period 800 granted', timeoutMs: 120_000, intervalMs: 50 });
    } finally {
      await second.stop();
    }
    const ref = await h.balanceRegistry.findBalance(customerId, product.id);
    expect(grantsIn(await h.ledgerOf(ref!.id)).map((g) => g.period)).toEqual([...Array(801).keys()]);
  }, 300_000);

  it('catches a subscription backdated five years with a daily period up in bounded runs: the request grants a few, every period once', async () => {
    // "Now" is five years and a bit after the start: 1,8xx daily periods are due at once.
    const fiveYearsLater = new Date(startsAt.getTime() + (5 * 365 + 1) * 86_400_000 + 3_600_000);
    h.clock.set(fiveYearsLater);
    const current = periodIndexAt(startsAt, { days: 1 }, fiveYearsLater);
    expect(current).toBeGreaterThan(1800);
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Daily', items: [{ productId: product.id, creditsPerPeriod: '1', period: { days: 1 } }] });
    const customerId = `customer-${randomUUID()}`;

    // What the API's POST /v1/subscriptions calls: it grants the service's inline bound, no more.
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const ref = await h.balanceRegistry.findBalance(customerId, product.id);
    const grants = async () => grantsIn(await h.ledgerOf(ref!.id));
    expect((await grants()).map((g) => g.period)).toEqual([...Array(12).keys()]);
    expect(subscription.grantedThrough).toEqual(new Map([[product.id, 11]]));

    // Each run grants at most its bound and keeps its progress in the watermark.
    const bound = 500;
    const scheduler = h.newScheduler(60_000, bound);
    const runs: { granted: number; behind: number }[] = [];
    for (let run = 0; run < 10; run += 1) {
      const summary = await scheduler.runOnce();
      expect(summary.failed).toBe(0);
      runs.push({ granted: summary.granted, behind: summary.behind });
      if (summary.behind === 0) break;
    }
    expect(runs.every((r) => r.granted <= bound)).toBe(true);
    expect(runs.length).toBe(Math.ceil((current + 1 - 12) / bound));
    expect(runs.at(-1)!.behind).toBe(0);
    expect(runs.slice(0, -1).every((r) => r.granted === bound && r.behind === 1)).toBe(true);

    // Every period from 0 to the current one, exactly once, and nothing more on another run.
    expect((await scheduler.runOnce()).granted).toBe(0);
    expect((await grants()).map((g) => g.period)).toEqual([...Array(current + 1).keys()]);
    expect((await h.subscriptions.getSubscription(subscription.id))!.grantedThrough).toEqual(new Map([[product.id, current]]));
  }, 300_000);
});
