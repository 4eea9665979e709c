import { randomUUID } from 'node:crypto';
import { waitFor, type Page } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, openCustomer, startConsoleStack, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * Plans and subscriptions in the console beyond the first page of plans (more than the 500 a
 * list answers at most), the plan form's own checks, and changed terms: in Chromium against the
 * real main job on the local stack.
 */
jest.setTimeout(300_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;
const PLANS = 501;

/** Plan #n (from 1) in id order, which is the order lists answer in. */
const planId = (n: number) => `plan-${String(n - 1).padStart(4, '0')}`;

interface SubscriptionView {
  readonly id: string;
  readonly overrides: ReadonlyArray<{ productId: string; effectiveFromPeriod: number; creditsPerPeriod: string | null; lowBalanceThreshold: string | null }>;
}

describe('plans and subscriptions in the console past the first 500 plans', () => {
  let stack: ConsoleStack;
  let productId: string;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_plans', roles: 'consumer,projector,api', adminKey: ADMIN_KEY });
    productId = (await stack.api<{ id: string }>('POST', '/credit-products', { name: 'Seat credits' })).id;
    // 501 plans, in batches: plan #501 is on no first page of 500.
    for (let first = 1; first <= PLANS; first += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, PLANS - first + 1) }, (_, at) =>
          stack.api('POST', '/plans', { id: planId(first + at), name: `Plan ${first + at}`, items: [{ productId, creditsPerPeriod: '100', period: 'month' }] }),
        ),
      );
    }
  });

  afterAll(async () => {
    await stack?.close();
  });

  async function signedIn(): Promise<Page> {
    const context = await stack.browser.newContext({ viewport: DESKTOP_VIEWPORT });
    const page = await context.newPage();
    await stack.signIn(page);
    return page;
  }

  const subscriptionOf = (id: string) => stack.api<SubscriptionView>('GET', `/subscriptions/${encodeURIComponent(id)}`);

  it("shows the terms of a subscription to plan #501 in Change terms, keeps them on Save, and offers no Save while its plan cannot be read", async () => {
    const customerId = `late-plan-${randomUUID()}`;
    const subscription = await stack.api<SubscriptionView>('POST', '/subscriptions', {
      id: randomUUID(),
      customerId,
      planId: planId(PLANS),
      overrides: [{ productId, creditsPerPeriod: '750' }],
    });
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      const card = page.getByRole('region', { name: `Subscription ${subscription.id}` });
      await untilText(card, (text) => text.includes(`Plan ${PLANS}`), 'the subscription under its plan name');

      // The plan read fails: no fields, and Save is refused with the reason, not sent empty.
      await page.route(`**/v1/plans/${planId(PLANS)}`, (route) => route.abort('connectionrefused'));
      await card.getByRole('button', { name: 'Change terms' }).click();
      const dialog = page.getByRole('dialog', { name: `Change terms: Plan ${PLANS}` });
      await untilText(dialog.getByRole('alert'), (text) => text.includes('could not be read'), 'the failed plan read');
      const save = dialog.getByRole('button', { name: 'Save terms' });
      expect(await save.isDisabled()).toBe(true);
      expect(await dialog.getByLabel('Credits per period for this subscription').count()).toBe(0);
      // The reason is the button's description, for a screen reader too.
      expect(await save.getAttribute('aria-describedby')).toBeTruthy();
      expect(await page.locator(`#${await save.getAttribute('aria-describedby')}`).innerText()).toMatch(/plan .* could not be read/i);
      await expectAccessible(page, 'Change terms with its plan unread');

      // Read again once the plan answers, held until the focus is seen: the button goes, and the
      // focus moves to what says the plan is being read, not to the page's body.
      await page.unroute(`**/v1/plans/${planId(PLANS)}`);
      let answer: () => void = () => undefined;
      const answered = new Promise<void>((resolve) => {
        answer = resolve;
      });
      await page.route(`**/v1/plans/${planId(PLANS)}`, async (route) => {
        await answered;
        await route.continue();
      });
      await dialog.getByRole('button', { name: 'Read the plan again' }).click();
      // A string: the tests' TypeScript has no DOM types (the page runs it, not node).
      const focused = () =>
        page.evaluate<{ role?: string; text?: string }>(`(() => ({ role: document.activeElement?.getAttribute('role') ?? document.activeElement?.tagName, text: document.activeElement?.textContent }))()`);
      await waitFor(async () => (await focused()).role === 'status' || undefined, { description: 'the focus on the message that the plan is being read', timeoutMs: 10_000 }).catch(async (error: unknown) => {
        throw new Error(`${String(error)}; the focus is on ${JSON.stringify((await focused()).role)}`);
      });
      expect((await focused()).text).toMatch(/Reading the plan's products/);
      answer();
      const credits = dialog.getByLabel('Credits per period for this subscription');
      await credits.waitFor({ timeout: 30_000 });
      // Once it is read, on its first field.
      await waitFor(async () => (await credits.evaluate((input) => input === input.ownerDocument.activeElement)) || undefined, { description: 'the focus on the first field', timeoutMs: 10_000 });
      await page.unroute(`**/v1/plans/${planId(PLANS)}`);
      expect(await credits.inputValue()).toBe('750');
      expect(await save.isDisabled()).toBe(false);
      await save.click();
      await dialog.waitFor({ state: 'hidden', timeout: 30_000 });
      const after = await subscriptionOf(subscription.id);
      expect(after.overrides.at(-1)).toMatchObject({ productId, creditsPerPeriod: '750' });
      expect(after.overrides.every((version) => version.creditsPerPeriod === '750')).toBe(true);
    } finally {
      await page.context().close();
    }
  });

  it("says the next period's grant on the portal, a change of terms from then on included", async () => {
    const customerId = `next-grant-${randomUUID()}`;
    const subscription = await stack.api<SubscriptionView>('POST', '/subscriptions', { id: randomUUID(), customerId, planId: planId(1), overrides: [{ productId, creditsPerPeriod: '750' }] });
    // From the next period on: the period in progress keeps its 750.
    await stack.api('PATCH', `/subscriptions/${subscription.id}`, { overrides: [{ productId, creditsPerPeriod: '900' }] });
    const { url } = await stack.api<{ url: string }>('POST', `/customers/${encodeURIComponent(customerId)}/portal-sessions`);
    const context = await stack.browser.newContext({ viewport: DESKTOP_VIEWPORT });
    const portal = await context.newPage();
    try {
      await portal.goto(url.replace(/^http:\/\/[^/]+/, stack.base));
      const table = portal.getByRole('table', { name: 'Subscriptions' });
      await untilText(table, (text) => text.includes('Plan 1'), 'the subscription on the portal');
      const rows = await table.locator('tbody tr').evaluateAll((found) => found.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
      expect(rows).toEqual([['Plan 1', expect.anything(), '750 per month', expect.stringMatching(/^Next credits .+: 900$/)]]);
    } finally {
      await context.close();
    }
  });

  it('sends Change terms against the subscription it read; after a change made meanwhile it keeps what the operator typed, names what changed, and a second Save sends it on the new version', async () => {
    const customerId = `stale-terms-${randomUUID()}`;
    const subscription = await stack.api<SubscriptionView>('POST', '/subscriptions', { id: randomUUID(), customerId, planId: planId(2), overrides: [{ productId, creditsPerPeriod: '750' }] });
    const page = await signedIn();
    const patches: Array<{ ifMatch: string | undefined; body: unknown }> = [];
    page.on('request', (request) => {
      if (request.method() === 'PATCH' && request.url().includes('/v1/subscriptions/')) patches.push({ ifMatch: request.headers()['if-match'], body: request.postDataJSON() });
    });
    try {
      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      const card = page.getByRole('region', { name: `Subscription ${subscription.id}` });
      await card.getByRole('button', { name: 'Change terms' }).click();
      const dialog = page.getByRole('dialog', { name: 'Change terms: Plan 2' });
      const credits = dialog.getByLabel('Credits per period for this subscription');
      const limit = dialog.getByLabel('Warning limit for this subscription');
      await credits.waitFor({ timeout: 30_000 });
      expect(await credits.inputValue()).toBe('750');
      // Someone else changes the terms after the dialog was opened: the credits, and a warning limit.
      await stack.api('PATCH', `/subscriptions/${subscription.id}`, { overrides: [{ productId, creditsPerPeriod: '800', lowBalanceThreshold: '5' }] });

      await credits.fill('900');
      await dialog.getByRole('button', { name: 'Save terms' }).click();
      const alert = dialog.getByRole('alert');
      await untilText(alert, (text) => text.includes("changed this subscription's terms after you opened it"), 'the refusal for a change made meanwhile');
      expect(patches.map((patch) => patch.ifMatch)).toEqual(['"1"']);
      // What changed, with its value now; nothing of 900 saved.
      const told = await alert.innerText();
      expect(told).toContain(`${productId}: credits per period is now 800`);
      expect(told).toContain(`${productId}: warning limit is now 5`);
      expect((await subscriptionOf(subscription.id)).overrides.some((version) => version.creditsPerPeriod === '900')).toBe(false);
      // The operator's typing is kept; the field the operator left takes the other change's value.
      expect(await credits.inputValue()).toBe('900');
      expect(await limit.inputValue()).toBe('5');
      await untilText(card.getByRole('table', { name: 'Terms by period' }), (text) => text.includes('800'), 'the card read again');
      await expectAccessible(page, 'Change terms refused for a change made meanwhile');

      // Saved again as it stands, against the version read now.
      await dialog.getByRole('button', { name: 'Save terms' }).click();
      await dialog.waitFor({ state: 'hidden', timeout: 30_000 });
      expect(patches).toEqual([
        { ifMatch: '"1"', body: { overrides: [{ productId, creditsPerPeriod: '900' }] } },
        { ifMatch: '"2"', body: { overrides: [{ productId, creditsPerPeriod: '900', lowBalanceThreshold: '5' }] } },
      ]);
      expect((await subscriptionOf(subscription.id)).overrides.at(-1)).toMatchObject({ productId, creditsPerPeriod: '900', lowBalanceThreshold: '5' });
    } finally {
      await page.context().close();
    }
  });

  it('says a Change terms save refused after a cancel (412) that the subscription was canceled meanwhile, and offers no Save', async () => {
    const customerId = `canceled-terms-${randomUUID()}`;
    const subscription = await stack.api<SubscriptionView>('POST', '/subscriptions', { id: randomUUID(), customerId, planId: planId(3), overrides: [{ productId, creditsPerPeriod: '750' }] });
    const page = await signedIn();
    let patches = 0;
    page.on('request', (request) => {
      if (request.method() === 'PATCH' && request.url().includes('/v1/subscriptions/')) patches += 1;
    });
    try {
      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      const card = page.getByRole('region', { name: `Subscription ${subscription.id}` });
      await card.getByRole('button', { name: 'Change terms' }).click();
      const dialog = page.getByRole('dialog', { name: 'Change terms: Plan 3' });
      const credits = dialog.getByLabel('Credits per period for this subscription');
      await credits.waitFor({ timeout: 30_000 });
      // Someone else cancels the subscription after the dialog was opened: its version goes up.
      await stack.api('POST', `/subscriptions/${subscription.id}/cancel`, {});

      await credits.fill('900');
      const save = dialog.getByRole('button', { name: 'Save terms' });
      await save.click();
      const alert = dialog.getByRole('alert');
      await untilText(alert, (text) => text.includes('was canceled'), 'the refusal for a cancel made meanwhile');
      const told = await alert.innerText();
      // Not the message of changed terms, whose Save would only be refused again (409 subscription_canceled).
      expect(told).not.toContain('Save applies');
      expect(told).toMatch(/canceled .*by /);
      expect(await save.isDisabled()).toBe(true);
      expect(await untilDescribed(page, save)).toContain('was canceled');
      const focused = () => page.evaluate<string>("document.activeElement?.textContent ?? ''");
      await waitFor(async () => (await focused()).includes('was canceled') || undefined, { description: 'the focus on the message that it was canceled', timeoutMs: 10_000 }).catch(async (error: unknown) => {
        throw new Error(`${String(error)}; the focus is on ${JSON.stringify(await focused())}`);
      });
      expect(patches).toBe(1);
      await expectAccessible(page, 'Change terms refused for a cancel made meanwhile');
    } finally {
      await page.context().close();
    }
  });

  it('pages through the plans to plan #501 and retires it', async () => {
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plans' }).click();
      const table = page.getByRole('table', { name: 'Plans' });
      await untilText(table, (text) => text.includes('Plan 1 '), 'the first page of plans');
      const last = `Plan ${PLANS}`;
      await waitFor(
        async () => {
          if ((await page.getByRole('button', { name: `Retire ${last}` }).count()) > 0) return true;
          const next = page.getByRole('button', { name: 'Next page' });
          if (await next.isEnabled()) {
            const before = await table.innerText();
            await next.click();
            await waitFor(async () => (await table.innerText()) !== before, { description: 'the next page of plans', timeoutMs: 30_000 });
          }
          return false;
        },
        { description: `${last} in the plans`, timeoutMs: 120_000 },
      );
      await page.getByRole('button', { name: `Retire ${last}` }).click();
      await page.getByRole('dialog', { name: `Retire plan: ${last}` }).getByRole('button', { name: 'Retire plan' }).click();
      await untilText(table.locator('tbody tr', { hasText: planId(PLANS) }), (text) => text.includes('Retired'), 'plan #501 retired, on the page it is on');
      expect((await stack.api<{ retiredAt: string | null }>('GET', `/plans/${planId(PLANS)}`)).retiredAt).not.toBeNull();
    } finally {
      await page.context().close();
    }
  });

  it('says under Days, before sending, that a plan period takes 1 to 3660 days', async () => {
    const page = await signedIn();
    let posts = 0;
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/v1/plans')) posts += 1;
    });
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plans' }).click();
      const form = page.locator('form', { has: page.getByRole('button', { name: 'Create plan' }) });
      await form.getByLabel('Plan name').fill(`Days ${randomUUID()}`);
      await form.getByRole('button', { name: 'Add credit product to plan' }).click();
      await form.getByLabel('Credits per period', { exact: true }).fill('5');
      await form.getByLabel('Period', { exact: true }).selectOption('days');
      const days = form.getByLabel('Days', { exact: true });
      for (const typed of ['0', '3661', '1.5', 'ten']) {
        await days.fill(typed);
        await form.getByRole('button', { name: 'Create plan' }).click();
        const describedBy = await untilDescribed(page, days);
        expect(describedBy).toMatch(/whole number of days from 1 to 3660/);
        expect(await form.getByText('anyOf').count()).toBe(0);
        expect(await days.getAttribute('aria-invalid')).toBe('true');
      }
      await expectAccessible(page, 'the plan form with a Days error');
      expect(posts).toBe(0);
      // A valid number clears it and the plan is made.
      await days.fill('3660');
      await form.getByRole('button', { name: 'Create plan' }).click();
      await waitFor(() => posts === 1, { description: 'the plan sent', timeoutMs: 30_000 });
      await waitFor(async () => (await days.count()) === 0, { description: 'the form emptied once the plan is made', timeoutMs: 30_000 });
    } finally {
      await page.context().close();
    }
  });
});

/** The text of what describes `field` (its aria-describedby), once it says anything. */
async function untilDescribed(page: Page, field: ReturnType<Page['getByLabel']>): Promise<string> {
  return waitFor(
    async () => {
      const ids = (await field.getAttribute('aria-describedby'))?.split(' ') ?? [];
      const texts = await Promise.all(ids.map((id) => page.locator(`#${id}`).innerText()));
      return texts.join(' ') || undefined;
    },
    { description: 'the field described', timeoutMs: 10_000 },
  );
}
