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

  /** Holds the subscription's row lock in a connection of its own, as another change would, until release(). */
  async function holdRowLock(subscriptionId: string) {
    const holder: PoolClient = await h.db.pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE', [subscriptionId]);
    return {
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
   * Waits until `count` connections of this schema wait for a subscription's row lock: blocked,
   * and holding the RowShareLock on its subscriptions table that a SELECT ... FOR UPDATE takes
   * before it waits.
   */
  async function waitForRowLockWaiters(count: number, description: string): Promise<void> {
    await waitFor(
      async () => {
        const { rows } = await h.db.pool.query<{ n: number }>(
          `SELECT count(*)::integer AS n FROM pg_stat_activity AS a
            WHERE cardinality(pg_blocking_pids(a.pid)) > 0
              AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = a.pid AND l.relation = 'subscriptions'::regclass AND l.mode = 'RowShareLock')`,
        );
        return (rows[0]?.n ?? 0) >= count;
      },
      { description, timeoutMs: 30_000, intervalMs: 20 },
    );
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
      await waitForRowLockWaiters(1, 'the cancel waiting for the lock');
      // Period 1 begins while the cancel waits; the scheduler's reservation of it waits behind the cancel.
      h.clock.set(inPeriod(1));
      run = scheduler.runOnce();
      run.catch(() => undefined);
      await waitForRowLockWaiters(2, 'the grant waiting behind the cancel');
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
   * grant reserved and not yet appended; entered() tells whether one has reached it.
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

  const storedSubscription = async (subscriptionId: string) => {
    const stored = await h.subscriptions.getSubscription(subscriptionId);
    if (stored === undefined) throw new Error(`no subscription ${subscriptionId}`);
    return stored;
  };

  /**
   * Holds the row lock while `change` (a cancel, a change of terms) waits for it first in line and
   * a run of a scheduler ahead of the service's clock, due to grant period 1, waits behind it to
   * reserve the period; then lets the lock go.
   */
  async function grantBehind<T>(subscriptionId: string, change: () => Promise<T>) {
    const lock = await holdRowLock(subscriptionId);
    let changing: Promise<T> | undefined;
    let run: Promise<GrantRunSummary> | undefined;
    try {
      changing = change();
      changing.catch(() => undefined);
      await waitForRowLockWaiters(1, 'the change waiting for the lock');
      run = schedulerAt(inPeriod(1)).runOnce();
      run.catch(() => undefined);
      await waitForRowLockWaiters(2, 'the grant waiting behind the change');
    } finally {
      await lock.release();
    }
    return { changed: await changing, run: await run };
  }

  /**
   * Holds the row lock while a run of a scheduler ahead of the service's clock, due to grant
   * period 1 (its append held at a gate), waits for it first in line and `change` waits behind it;
   * then lets the lock go. Answers once the change has answered, the gate still shut.
   */
  async function changeBehindReservation<T>(subscriptionId: string, change: () => Promise<T>) {
    const gated = gatedLedger(subscriptionId, 1);
    const lock = await holdRowLock(subscriptionId);
    let changing: Promise<T> | undefined;
    let run: Promise<GrantRunSummary> | undefined;
    try {
      run = schedulerAt(inPeriod(1), gated.ledger).runOnce();
      run.catch(() => undefined);
      await waitForRowLockWaiters(1, "the grant's reservation waiting for the lock");
      changing = change();
      changing.catch(() => undefined);
      await waitForRowLockWaiters(2, 'the change waiting behind the reservation');
    } finally {
      await lock.release();
    }
    let answered = false;
    changing.then(
      () => (answered = true),
      () => (answered = true),
    );
    // The reservation lets the lock go before it appends: the change answers while the append waits.
    await waitFor(() => answered, { description: 'the change answering while the reserved grant waits to append', timeoutMs: 30_000, intervalMs: 20 });
    const changed = await changing;
    return { changed, gated, run };
  }

  it('a grant of the next period tried while a cancel holds the lock waits, sees the cancellation and grants nothing after the final period', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(justBefore(1));
    const { changed: canceled, run } = await grantBehind(subscription.id, () => h.service.cancelSubscription(subscription.id));

    expect(run).toMatchObject({ failed: 0 });
    const [item] = subscriptionView(canceled).items;
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 0, grantedThrough: 0 });
    const stored = await storedSubscription(subscription.id);
    expect({ granted: stored.grantedThrough.get(product.id), reserved: stored.reservedThrough.get(product.id) }).toEqual({ granted: 0, reserved: 0 });
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0]);
  });

  it('a cancel waiting behind a reservation takes the reserved period in, without waiting for its append, which lands in it', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });

    h.clock.set(justBefore(1));
    const { changed: canceled, gated, run } = await changeBehindReservation(subscription.id, () => h.service.cancelSubscription(subscription.id));

    expect(canceled.subscription.canceledAt).toEqual(periodStart(startsAt, 'month', 1));
    const [item] = subscriptionView(canceled).items;
    // Reserved, not yet granted: the answer shows what is granted.
    expect({ finalPeriod: item?.finalPeriod, grantedThrough: item?.grantedThrough }).toEqual({ finalPeriod: 1, grantedThrough: 0 });
    gated.open();
    expect((await run).failed).toBe(0);
    expect((await storedSubscription(subscription.id)).grantedThrough.get(product.id)).toBe(1);
    h.clock.set(inPeriod(3));
    await h.newScheduler().runOnce();
    expect(grantsIn(await h.ledgerOf(await balanceOf(customerId, product.id))).map((g) => g.period)).toEqual([0, 1]);
  });

  it('a grant racing a change of terms grants on the terms in force for its period when it reserves it', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    const raise = () => h.service.changeOverrides(subscription.id, [{ productId: product.id, creditsPerPeriod: '400' }]);

    h.clock.set(justBefore(1));
    // The change first: made in period 0 before period 1 was reserved, it applies from period 1.
    const { changed, run } = await grantBehind(subscription.id, raise);
    expect(changed.subscription.overrides.filter((o) => o.creditsPerPeriod !== null).map((o) => o.effectiveFromPeriod)).toEqual([1]);
    expect(run).toMatchObject({ failed: 0 });

    // The reservation of period 1 first: a change behind it applies from period 2, though it is
    // made before the grant of period 1 is appended.
    const other = await h.service.createSubscription({ customerId: `customer-${randomUUID()}`, planId: plan.id, startsAt });
    const later = await changeBehindReservation(other.subscription.id, () =>
      h.service.changeOverrides(other.subscription.id, [{ productId: product.id, creditsPerPeriod: '400' }]),
    );
    later.gated.open();
    expect(await later.run).toMatchObject({ failed: 0 });
    expect(later.changed.subscription.overrides.filter((o) => o.creditsPerPeriod !== null).map((o) => o.effectiveFromPeriod)).toEqual([2]);

    h.clock.set(inPeriod(2));
    await h.newScheduler().runOnce();
    const credits = async (customer: string) =>
      grantsIn(await h.ledgerOf(await balanceOf(customer, product.id))).map((g) => [g.period, formatCredits(g.credits)]);
    expect(await credits(customerId)).toEqual([
      [0, '100'],
      [1, '400'],
      [2, '400'],
    ]);
    expect(await credits(other.subscription.customerId)).toEqual([
      [0, '100'],
      [1, '100'],
      [2, '400'],
    ]);
  });

  it('a grant whose append landed but whose answer was lost stays reserved: a cancel then takes its period in, and the next run records it', async () => {
    const { product, plan } = await monthlyPlan('100');
    const customerId = `customer-${randomUUID()}`;
    const { subscription } = await h.service.createSubscription({ customerId, planId: plan.id, startsAt });
    // Its grant is appended, then the call fails (its answer lost), before the watermark is raised.
    const failing: LedgerService = {
      ...h.ledger,
      async grant(balanceId, grant) {
        const result = await h.ledger.grant(balanceId, grant);
        if (grant.subscriptionId === subscription.id) throw new Error('the answer to the grant was lost');
        return result;
      },
    };

    expect(await schedulerAt(inPeriod(1), failing).runOnce()).toMatchObject({ failed: 1 });
    expect((await storedSubscription(subscription.id)).grantedThrough.get(product.id)).toBe(0);

    // Canceled by the service's clock, still in period 0: period 1 is in the ledger, so it is the final one.
    h.clock.set(justBefore(1));
    const canceled = await h.service.cancelSubscription(subscription.id);
    expect(subscriptionView(canceled).items[0]?.finalPeriod).toBe(1);

    expect(await schedulerAt(inPeriod(1)).runOnce()).toMatchObject({ failed: 0 });
    expect((await storedSubscription(subscription.id)).grantedThrough.get(product.id)).toBe(1);
    h.clock.set(inPeriod(3));
    await h.newScheduler().runOnce();
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
      await waitForRowLockWaiters(1, 'the change waiting for the lock');
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
