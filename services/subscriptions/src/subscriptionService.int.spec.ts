import { randomUUID } from 'node:crypto';
import { ProductNotFoundError } from '@tally/catalog';
import { formatCredits, parseCredits, ValidationError } from '@tally/domain';
import type { LedgerService } from '@tally/ledger';
import { waitFor } from '@tally/test-support';
import type { PoolClient } from 'pg';
import { periodStart } from './billingPeriod';
import { createGrantScheduler, type GrantRunSummary } from './grantScheduler';
import {
  PlanAlreadyExistsError,
  PlanNotFoundError,
  PlanRetiredError,
  SubscriptionCanceledError,
  SubscriptionChangedError,
  SubscriptionNotFoundError,
} from './subscriptionErrors';
import { createSubscriptionGranter } from './subscriptionGranter';
import { subscriptionView } from './subscriptionView';
import { createSubscriptionsHarness, grantsIn, SubscriptionsHarness } from './testing/subscriptionsHarness';

jest.setTimeout(120_000);

const START = '2024-01-31T09:00:00.000Z';
const startsAt = new Date(START);
/** A moment inside monthly period n of a subscription starting at START. */
const inPeriod = (n: number) => new Date(periodStart(startsAt, 'month', n).getTime() + 60_000);
/** The last millisecond before monthly period n begins. */
const justBefore = (n: number) => new Date(periodStart(startsAt, 'month', n).getTime() - 1);

describe('subscription service on PostgreSQL and the event store', () => {
  let h: SubscriptionsHarness;

  beforeAll(async () => {
    h = await createSubscriptionsHarness('subs_service', START);
  });

  afterAll(async () => {
    await h.close();
  });

  beforeEach(() => h.clock.set(START));

  async function monthlyPlan(credits = '100', threshold?: string) {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({
      name: 'Starter',
      items: [{ productId: product.id, creditsPerPeriod: credits, period: 'month', ...(threshold !== undefined ? { lowBalanceThreshold: threshold } : {}) }],
    });
    return { product, plan };
  }

  async function balanceOf(customerId: string, productId: string): Promise<string> {
    const ref = await h.balanceRegistry.findBalance(customerId, productId);
    if (ref === undefined) throw new Error(`no balance of ${productId} for ${customerId}`);
    return ref.id;
  }

  it('grants the overridden amount while the plan and the catalog stay unchanged', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;

    const created = await h.service.createSubscription({
      customerId,
      planId: plan.id,
      startsAt,
      overrides: [{ productId: product.id, creditsPerPeriod: '250' }],
    });

    expect(created.subscription.grantedThrough).toEqual(new Map([[product.id, 0]]));
    const balanceId = await balanceOf(customerId, product.id);
    const grants = grantsIn(await h.ledgerOf(balanceId));
    expect(grants).toEqual([{ period: 0, credits: parseCredits('250'), subscriptionId: created.subscription.id }]);
    expect(formatCredits((await h.ledger.getBalance(balanceId)).balance.balance)).toBe('250');

    expect(await h.service.getPlan(plan.id)).toEqual(plan);
    expect(await h.catalog.getProduct(product.id)).toEqual(product);
  });

  it('grants both subscriptions whose ids met before ids were encoded: s:x on p and s on x:p (issue 10)', async () => {
    const tag = randomUUID().slice(0, 8);
    const p = await h.createProduct({ id: `p${tag}` });
    const xp = await h.createProduct({ id: `x:p${tag}` });
    const planOf = async (productId: string) =>
      h.service.createPlan({ name: 'Starter', items: [{ productId, creditsPerPeriod: '100', period: 'month' }] });
    const [planP, planXp] = [await planOf(p.id), await planOf(xp.id)];
    const first = await h.service.createSubscription({ id: `s${tag}:x`, customerId: `alice-${tag}`, planId: planP.id, startsAt });
    const second = await h.service.createSubscription({ id: `s${tag}`, customerId: `bob-${tag}`, planId: planXp.id, startsAt });
    expect(first.subscription.grantedThrough).toEqual(new Map([[p.id, 0]]));
    expect(second.subscription.grantedThrough).toEqual(new Map([[xp.id, 0]]));
    for (const [customerId, productId] of [[`alice-${tag}`, p.id], [`bob-${tag}`, xp.id]] as const) {
      expect(formatCredits((await h.ledger.getBalance(await balanceOf(customerId, productId))).balance.balance)).toBe('100');
    }
  });

  it('records the subscription, plan and period bounds on the grant', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const events = await h.ledgerOf(await balanceOf(customerId, product.id));
    const grant = events.find(({ event }) => event.type === 'CreditToppedUp');
    expect(grant?.event).toMatchObject({
      source: 'grant',
      grant: {
        subscriptionId: subscription.id,
        planId: plan.id,
        period: 0,
        periodStart: '2024-01-31T09:00:00.000Z',
        periodEnd: '2024-02-29T09:00:00.000Z',
      },
    });
  });

  it('opens balances with the override threshold, else the plan item threshold', async () => {
    const { product, plan } = await monthlyPlan('100', '20');
    const withOverride = `customer-${randomUUID()}`;
    const withPlan = `customer-${randomUUID()}`;
    await h.service.createSubscription({ customerId: withOverride, planId: plan.id, startsAt, overrides: [{ productId: product.id, lowBalanceThreshold: '35' }] });
    await h.service.createSubscription({ customerId: withPlan, planId: plan.id, startsAt });

    const threshold = async (customerId: string) =>
      (await h.ledger.getBalance(await balanceOf(customerId, product.id))).balance.lowBalanceThreshold;
    expect(await threshold(withOverride)).toBe(parseCredits('35'));
    expect(await threshold(withPlan)).toBe(parseCredits('20'));
  });

  it("grants into the customer's existing balance instead of opening another", async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const existing = await h.ledger.openBalance({ customerId, productId: product.id, startingBalance: parseCredits('7') });

    await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    expect(await h.balanceRegistry.listCustomerBalances(customerId)).toHaveLength(1);
    expect((await h.ledger.getBalance(existing.balance.balanceId)).balance.balance).toBe(parseCredits('107'));
  });

  it('applies a PATCH from the next period; the current period keeps its terms', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const scheduler = h.newScheduler();

    h.clock.set(inPeriod(1));
    await scheduler.runOnce();
    const patched = await h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '400' }]);
    expect(patched.subscription.overrides).toEqual([
      { productId: product.id, effectiveFromPeriod: 2, creditsPerPeriod: parseCredits('400'), lowBalanceThreshold: null, changedBy: null },
    ]);
    await scheduler.runOnce();
    h.clock.set(inPeriod(2));
    await scheduler.runOnce();
    // Back to the plan's terms from period 3: the override list no longer names the product.
    await h.service.changeOverrides(subscription.id, []);
    h.clock.set(inPeriod(3));
    await scheduler.runOnce();

    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => [g.period, formatCredits(g.credits)])).toEqual([
      [0, '100'],
      [1, '100'],
      [2, '400'],
      [3, '100'],
    ]);
  });

  it('cancel stops grants after the current period', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const scheduler = h.newScheduler();

    h.clock.set(inPeriod(1));
    await scheduler.runOnce();
    const canceled = await h.service.cancelSubscription(subscription.id);
    expect(canceled.subscription.canceledAt).toEqual(inPeriod(1));
    for (let n = 2; n <= 6; n += 1) {
      h.clock.set(inPeriod(n));
      await scheduler.runOnce();
    }

    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => g.period)).toEqual([0, 1]);
    // Canceling again keeps the first cancellation; the scheduler no longer visits it.
    expect((await h.service.cancelSubscription(subscription.id)).subscription.canceledAt).toEqual(inPeriod(1));
    const schedulable = await h.subscriptions.listSchedulable({ after: null, limit: 1000 });
    expect(schedulable.map((s) => s.subscription.id)).not.toContain(subscription.id);
    await expect(h.service.changeOverrides(subscription.id, [])).rejects.toBeInstanceOf(SubscriptionCanceledError);
  });

  it('a cancellation while the scheduler was down still grants the current period, and none after it', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(inPeriod(3));
    await h.service.cancelSubscription(subscription.id);
    h.clock.set(inPeriod(8));
    await h.newScheduler().runOnce();

    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => g.period)).toEqual([0, 1, 2, 3]);
  });

  it('a subscription starting later grants nothing until its start', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const later = new Date('2024-03-15T00:00:00.000Z');
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt: later });
    expect(subscription.grantedThrough).toEqual(new Map());
    expect(await h.balanceRegistry.findBalance(customerId, product.id)).toBeUndefined();

    h.clock.set(later);
    await h.newScheduler().runOnce();
    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => g.period)).toEqual([0]);
  });

  it("grants every item's first period when it answers, however many items the plan has: the inline bound is for backlog", async () => {
    const products = [];
    for (let i = 0; i < 13; i += 1) products.push(await h.createProduct());
    const plan = await h.service.createPlan({
      name: 'Thirteen',
      items: products.map((product) => ({ productId: product.id, creditsPerPeriod: '1', period: 'month' as const })),
    });

    const { subscription } = await h.service.createSubscription({ customerId: `customer-${randomUUID()}`, planId: plan.id });

    expect(subscription.grantedThrough).toEqual(new Map(products.map((product) => [product.id, 0])));
  });

  it('refuses a start more than 10 years back, even on a yearly plan, or more than a year ahead, opening nothing', async () => {
    const product = await h.createProduct();
    const plan = await h.service.createPlan({ name: 'Yearly', items: [{ productId: product.id, creditsPerPeriod: '100', period: 'year' }] });
    const customerId = `customer-${randomUUID()}`;

    // Year 26, a typo for 2026: 2,000 yearly periods would be due at once.
    const refused = h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date('0026-03-01T00:00:00Z') });
    await expect(refused).rejects.toBeInstanceOf(ValidationError);
    await expect(refused).rejects.toThrow('at most 10 years back');
    const ahead = h.service.createSubscription({ customerId, planId: plan.id, startsAt: new Date('9999-12-31T23:59:59Z') });
    await expect(ahead).rejects.toThrow('at most 1 year ahead');
    expect(await h.balanceRegistry.findBalance(customerId, product.id)).toBeUndefined();
    expect(await h.service.listCustomerSubscriptions(customerId, { after: null, limit: 10 })).toEqual([]);
  });

  it('makes two concurrent changes of terms one after the other: each answer shows its own change and version, none the other\'s', async () => {
    const { product, plan } = await monthlyPlan('100');
    for (let round = 0; round < 5; round += 1) {
      const { subscription } = await h.service.createSubscription({ customerId: `customer-${randomUUID()}`, planId: plan.id, startsAt });
      expect(subscription.version).toBe(1);
      const [a, b] = await Promise.all([
        h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '300' }]),
        h.service.changeOverrides(subscription.id, [{ productId: product.id, lowBalanceThreshold: '5' }]),
      ]);
      const nextTerms = (details: typeof a) =>
        details.subscription.overrides.filter((o) => o.effectiveFromPeriod === 1).map((o) => [o.creditsPerPeriod, o.lowBalanceThreshold]);
      expect({ round, a: nextTerms(a), b: nextTerms(b) }).toEqual({ round, a: [[parseCredits('300'), null]], b: [[null, parseCredits('5')]] });
      expect([a.subscription.version, b.subscription.version].sort()).toEqual([2, 3]);
      expect((await h.service.getSubscription(subscription.id)).subscription.version).toBe(3);
    }
  });

  it('with the version read (If-Match), only one of two concurrent changes is made; the other is SubscriptionChangedError', async () => {
    const { product, plan } = await monthlyPlan('100');
    const { subscription } = await h.service.createSubscription({ customerId: `customer-${randomUUID()}`, planId: plan.id, startsAt });
    const outcomes = await Promise.allSettled([
      h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '300' }], undefined, { ifVersion: 1 }),
      h.service.changeOverrides(subscription.id, [{ productId: product.id, lowBalanceThreshold: '5' }], undefined, { ifVersion: 1 }),
    ]);
    expect(outcomes.map((outcome) => outcome.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(rejected?.reason).toBeInstanceOf(SubscriptionChangedError);
    expect(String(rejected?.reason.message)).toMatch(/is at version 2, not 1/);
    const stored = (await h.service.getSubscription(subscription.id)).subscription;
    expect(stored.version).toBe(2);
    expect(stored.overrides.filter((o) => o.effectiveFromPeriod === 1)).toHaveLength(1);

    // A cancellation takes it too; the one that stands bumps the version, canceling again does not.
    await expect(h.service.cancelSubscription(subscription.id, undefined, { ifVersion: 1 })).rejects.toBeInstanceOf(SubscriptionChangedError);
    expect((await h.service.getSubscription(subscription.id)).subscription.canceledAt).toBeNull();
    expect((await h.service.cancelSubscription(subscription.id, undefined, { ifVersion: 2 })).subscription.version).toBe(3);
    expect((await h.service.cancelSubscription(subscription.id)).subscription.version).toBe(3);
  });

  /**
   * Holds the subscription's row lock in a connection of its own, as another change would, until
   * release(); waitForWaiter() answers once a query of another connection waits for it.
   */
  async function holdRowLock(subscriptionId: string) {
    const holder: PoolClient = await h.db.pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE', [subscriptionId]);
    const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = rows[0]?.pid;
    return {
      waitForWaiter: () =>
        waitFor(
          async () => {
            const waiting = await h.db.pool.query<{ n: number }>('SELECT count(*)::integer AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid]);
            return (waiting.rows[0]?.n ?? 0) > 0;
          },
          { description: 'a change waiting for the row lock', timeoutMs: 30_000, intervalMs: 20 },
        ),
      async release() {
        try {
          await holder.query('COMMIT');
        } finally {
          holder.release();
        }
      },
    };
  }

  /**
   * Connections of this schema waiting for a subscription's row lock: blocked, and holding the
   * RowShareLock on its subscriptions table that a SELECT ... FOR UPDATE takes before it waits.
   */
  async function rowLockWaiters(): Promise<number> {
    const { rows } = await h.db.pool.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM pg_stat_activity AS a
        WHERE cardinality(pg_blocking_pids(a.pid)) > 0
          AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = a.pid AND l.relation = 'subscriptions'::regclass AND l.mode = 'RowShareLock')`,
    );
    return rows[0]?.n ?? 0;
  }

  it('a cancel that waits for the row lock is made at the time it gets it: a period that began meanwhile is its final one, granted once', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const scheduler = h.newScheduler();

    h.clock.set(justBefore(1));
    const lock = await holdRowLock(subscription.id);
    let cancel: ReturnType<typeof h.service.cancelSubscription> | undefined;
    let run: ReturnType<typeof scheduler.runOnce> | undefined;
    try {
      cancel = h.service.cancelSubscription(subscription.id);
      cancel.catch(() => undefined);
      await lock.waitForWaiter();
      // Period 1 begins while the cancel waits; the scheduler's grant of it waits behind the cancel.
      h.clock.set(inPeriod(1));
      run = scheduler.runOnce();
      run.catch(() => undefined);
      await waitFor(async () => (await rowLockWaiters()) >= 2, { description: 'the grant waiting behind the cancel', timeoutMs: 30_000, intervalMs: 20 });
    } finally {
      await lock.release();
    }
    const canceled = await cancel;
    await run;

    expect(canceled.subscription.canceledAt).toEqual(inPeriod(1));
    const [item] = subscriptionView(canceled).items;
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 1, grantedThrough: 1 });
    for (let n = 2; n <= 3; n += 1) {
      h.clock.set(inPeriod(n));
      await scheduler.runOnce();
    }
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0, 1]);
  });

  /**
   * The ledger, but a grant of `period` of the subscription waits at a gate until open(), as a
   * grant decided and not yet recorded; entered() tells whether one has reached it.
   */
  function gatedLedger(subscriptionId: string, period: number) {
    let entered = false;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const ledger: LedgerService = {
      ...h.ledger,
      async grant(balanceId, grant) {
        if (grant.subscriptionId === subscriptionId && grant.period === period) {
          entered = true;
          await gate;
        }
        return h.ledger.grant(balanceId, grant);
      },
    };
    return { ledger, entered: () => entered, open: () => open() };
  }

  /** A scheduler whose clock stands at `now`, ahead of the service's. */
  const schedulerAt = (now: Date, ledger: LedgerService = h.ledger) =>
    createGrantScheduler({ subscriptions: h.subscriptions, ledger, balanceRegistry: h.balanceRegistry, clock: () => now, intervalMs: 60_000, logger: h.logger });

  /**
   * Holds the row lock while `change` (a cancel, a change of terms) waits for it first in line and a
   * grant of period 1 by a scheduler ahead of the service's clock comes after it: the grant waits
   * for the lock, or, without one, has decided and waits at the ledger's gate. Then the lock goes to
   * the change, and the gate opens once the change has answered.
   */
  async function grantRacing<T>(subscriptionId: string, change: () => Promise<T>) {
    const gated = gatedLedger(subscriptionId, 1);
    const lock = await holdRowLock(subscriptionId);
    let changing: Promise<T> | undefined;
    let run: Promise<GrantRunSummary> | undefined;
    try {
      changing = change();
      changing.catch(() => undefined);
      await lock.waitForWaiter();
      run = schedulerAt(inPeriod(1), gated.ledger).runOnce();
      run.catch(() => undefined);
      await waitFor(async () => gated.entered() || (await rowLockWaiters()) >= 2, {
        description: 'the grant waiting behind the change',
        timeoutMs: 30_000,
        intervalMs: 20,
      });
    } finally {
      await lock.release();
    }
    const changed = await changing;
    gated.open();
    return { changed, run: await run };
  }

  it('a grant of the next period tried while a cancel holds the lock waits, sees the cancellation and grants nothing after the final period', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(justBefore(1));
    const { changed: canceled } = await grantRacing(subscription.id, () => h.service.cancelSubscription(subscription.id));

    const [item] = subscriptionView(canceled).items;
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 0, grantedThrough: 0 });
    expect((await h.subscriptions.getSubscription(subscription.id))?.grantedThrough.get(product.id)).toBe(0);
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0]);
  });

  it("a cancel while a grant holds the lock waits for it, and its final period takes in the period granted", async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const gated = gatedLedger(subscription.id, 1);

    h.clock.set(justBefore(1));
    const run = schedulerAt(inPeriod(1), gated.ledger).runOnce();
    run.catch(() => undefined);
    await waitFor(() => gated.entered(), { description: 'the grant of period 1 at the ledger', timeoutMs: 30_000, intervalMs: 20 });
    const cancel = h.service.cancelSubscription(subscription.id);
    let answered = false;
    cancel.then(
      () => (answered = true),
      () => (answered = true),
    );
    // It waits for the grant's lock; without one, it would answer at once with period 0 its final one.
    await waitFor(async () => answered || (await rowLockWaiters()) >= 1, { description: 'the cancel waiting for the lock', timeoutMs: 30_000, intervalMs: 20 });
    gated.open();
    expect((await run).failed).toBe(0);
    const canceled = await cancel;

    expect(canceled.subscription.canceledAt).toEqual(periodStart(startsAt, 'month', 1));
    const [item] = subscriptionView(canceled).items;
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 1, grantedThrough: 1 });
    h.clock.set(inPeriod(3));
    await h.newScheduler().runOnce();
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0, 1]);
  });

  it('a grant racing a change of terms grants on the terms in force for its period under the lock', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(justBefore(1));
    const { changed, run } = await grantRacing(subscription.id, () => h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '400' }]));

    // Made in period 0 before the grant of period 1 was recorded: it applies from period 1.
    expect(changed.subscription.overrides.filter((o) => o.creditsPerPeriod !== null).map((o) => o.effectiveFromPeriod)).toEqual([1]);
    expect(run).toMatchObject({ failed: 0 });
    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => [g.period, formatCredits(g.credits)])).toEqual([
      [0, '100'],
      [1, '400'],
    ]);
  });

  it('a grant that fails under the lock leaves the watermark as it was; the next run replays it, without a second grant', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    // The grant is appended, then the call fails (its answer lost), before the watermark is written.
    const failing: LedgerService = {
      ...h.ledger,
      async grant(balanceId, grant) {
        await h.ledger.grant(balanceId, grant);
        throw new Error('the answer to the grant was lost');
      },
    };
    const stored = async () => {
      const current = await h.subscriptions.getSubscription(subscription.id);
      if (current === undefined) throw new Error('no subscription');
      return current;
    };
    const granterWith = (ledger: LedgerService) => createSubscriptionGranter({ subscriptions: h.subscriptions, ledger, balanceRegistry: h.balanceRegistry, logger: h.logger });

    await expect(granterWith(failing).grantDue(await stored(), plan, inPeriod(1))).rejects.toThrow('the answer to the grant was lost');
    expect((await stored()).grantedThrough.get(product.id)).toBe(0);
    expect(await granterWith(h.ledger).grantDue(await stored(), plan, inPeriod(1))).toEqual({ granted: 0, alreadyGranted: 1, complete: false, caughtUp: true });
    expect((await stored()).grantedThrough.get(product.id)).toBe(1);
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0, 1]);
  });

  it("a cancel's final period takes in a period already granted, even by a scheduler whose clock runs ahead of the service's", async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const ahead = createGrantScheduler({
      subscriptions: h.subscriptions,
      ledger: h.ledger,
      balanceRegistry: h.balanceRegistry,
      clock: () => inPeriod(1),
      intervalMs: 60_000,
      logger: h.logger,
    });
    await ahead.runOnce();
    expect((await h.subscriptions.getSubscription(subscription.id))?.grantedThrough.get(product.id)).toBe(1);

    h.clock.set(justBefore(1));
    const canceled = await h.service.cancelSubscription(subscription.id);

    const [item] = subscriptionView(canceled).items;
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 1, grantedThrough: 1 });
    expect(canceled.subscription.canceledAt).toEqual(periodStart(startsAt, 'month', 1));
    h.clock.set(inPeriod(4));
    await h.newScheduler().runOnce();
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0, 1]);
  });

  it('a change of terms that waits for the row lock applies from the period after the one in progress when it gets it', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(justBefore(1));
    const lock = await holdRowLock(subscription.id);
    let change: ReturnType<typeof h.service.changeOverrides> | undefined;
    try {
      change = h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '400' }]);
      change.catch(() => undefined);
      await lock.waitForWaiter();
      // Period 1 begins while the change waits: it keeps the terms it started with.
      h.clock.set(inPeriod(1));
    } finally {
      await lock.release();
    }
    const changed = await change;

    expect(changed.subscription.overrides.filter((o) => o.creditsPerPeriod !== null).map((o) => o.effectiveFromPeriod)).toEqual([2]);
    const scheduler = h.newScheduler();
    await scheduler.runOnce();
    h.clock.set(inPeriod(2));
    await scheduler.runOnce();
    const grants = grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id)));
    expect(grants.map((g) => [g.period, formatCredits(g.credits)])).toEqual([
      [0, '100'],
      [1, '100'],
      [2, '400'],
    ]);
  });

  it('refuses what cannot be right', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    await expect(h.service.createSubscription({ customerId, planId: 'no-such-plan' })).rejects.toBeInstanceOf(PlanNotFoundError);
    await expect(
      h.service.createSubscription({ customerId, planId: plan.id, overrides: [{ productId: 'not-in-plan', creditsPerPeriod: '1' }] }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      h.service.createSubscription({ customerId, planId: plan.id, overrides: [{ productId: product.id, creditsPerPeriod: '0' }] }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      h.service.createPlan({ name: 'Ghost', items: [{ productId: 'no-such-product', creditsPerPeriod: '1', period: 'month' }] }),
    ).rejects.toBeInstanceOf(ProductNotFoundError);
    await expect(h.service.createPlan({ id: plan.id, name: 'Again', items: [...planItems(product.id)] })).rejects.toBeInstanceOf(
      PlanAlreadyExistsError,
    );
    await expect(h.service.getSubscription('no-such-subscription')).rejects.toBeInstanceOf(SubscriptionNotFoundError);
    // Nothing was stored or granted by the refused requests.
    expect(await h.balanceRegistry.listCustomerBalances(customerId)).toEqual([]);
  });

  it('the store itself refuses a subscription to a retired or missing plan, whatever the service checked before', async () => {
    const { plan } = await monthlyPlan('100');
    await h.service.retirePlan(plan.id);
    // As if the plan had been retired between the service's read of it and the insert.
    const subscription = { id: `sub-${randomUUID()}`, customerId: `customer-${randomUUID()}`, startsAt: new Date(), overrides: [] };
    await expect(h.subscriptions.createSubscription({ ...subscription, planId: plan.id })).rejects.toBeInstanceOf(PlanRetiredError);
    await expect(h.subscriptions.createSubscription({ ...subscription, planId: 'no-such-plan' })).rejects.toBeInstanceOf(PlanNotFoundError);
    expect(await h.subscriptions.getSubscription(subscription.id)).toBeUndefined();
  });
});

function planItems(productId: string) {
  return [{ productId, creditsPerPeriod: '1', period: 'month' as const }];
}
