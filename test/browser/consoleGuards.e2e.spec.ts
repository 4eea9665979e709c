import { randomUUID } from 'node:crypto';
import type { Request } from 'playwright-core';
import { waitFor, type Locator, type Page } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, openCustomer, startConsoleStack, untilFocused, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * What the console and the portal do when an operator or a customer acts twice, when an answer
 * is lost and when a read fails: in Chromium against the real main job on the local stack. A lost
 * answer and a lost connection are made in the browser's network (the request reaches the real
 * API, or nothing does); nothing answers in the API's place.
 */
jest.setTimeout(240_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;

/** The writes a page sends that `matches` picks, counted as they start and as they end however they end. */
function watchRequests(page: Page, matches: (request: Request) => boolean) {
  const counts = { started: 0, ended: 0 };
  page.on('request', (request) => {
    if (matches(request)) counts.started += 1;
  });
  const end = (request: Request) => {
    if (matches(request)) counts.ended += 1;
  };
  page.on('requestfinished', end);
  page.on('requestfailed', end);
  return {
    counts,
    /** Until every one started has ended (at least one has started): what the API holds is then final. */
    settled: () => waitFor(() => counts.started > 0 && counts.started === counts.ended, { description: 'the requests answered', timeoutMs: 30_000 }),
  };
}

/** Until nothing in `where` says it failed (no alert left). */
const noAlertIn = (where: Locator, description: string) => waitFor(async () => (await where.getByRole('alert').count()) === 0, { description, timeoutMs: 10_000 });

describe('the console and the portal when acted on twice, or when a read fails', () => {
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({
      prefix: 'browser_guards',
      roles: 'consumer,projector,api',
      adminKey: ADMIN_KEY,
      // The endpoints registered here are on 127.0.0.1, which Tally refuses by default; nothing is sent to them.
      env: { TALLY_CATALOG_REFRESH_MS: '200', TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'true' },
    });
  });

  afterAll(async () => {
    await stack?.close();
  });

  /** The API as the test's own client calls it, with the admin key: the answer's body. */
  const api = <T>(method: string, url: string, body?: unknown) => stack.api<T>(method, url, body);

  async function signedIn(): Promise<Page> {
    const context = await stack.browser.newContext({ viewport: DESKTOP_VIEWPORT });
    const page = await context.newPage();
    await stack.signIn(page);
    return page;
  }

  it('subscribes a customer once however often Subscribe is clicked, and takes an answer lost on the way back as done', async () => {
    const customerId = `subscribed-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Plan credits' });
    const planName = `Plan ${randomUUID()}`;
    await api('POST', '/plans', { name: planName, items: [{ productId: product.id, creditsPerPeriod: '10', period: 'month' }] });
    const subscriptions = async () => (await api<{ items: Array<{ id: string }> }>('GET', `/customers/${encodeURIComponent(customerId)}/subscriptions`)).items;
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      await untilText(page.getByLabel('Plan', { exact: true }), (text) => text.includes(planName), 'the plan to subscribe to');
      await page.getByLabel('Plan', { exact: true }).selectOption({ label: planName });
      const posts = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith('/v1/subscriptions'));

      await page.getByRole('button', { name: 'Subscribe' }).dblclick();
      await posts.settled();
      await page.getByRole('region', { name: /^Subscription / }).first().waitFor();
      expect(await subscriptions()).toHaveLength(1);

      // A second subscription, whose answer is lost on its way back: the API made it, the page
      // only hears that the connection failed. Subscribe again sends the same id, and the API's
      // "already exists" for it is the subscription the page asked for, not a failure.
      let made: number | undefined;
      await page.route(
        '**/v1/subscriptions',
        async (route) => {
          made = (await route.fetch()).status();
          await route.abort('failed');
        },
        { times: 1 },
      );
      await page.getByRole('button', { name: 'Subscribe' }).click();
      await page.getByRole('tabpanel').getByRole('alert').waitFor();
      expect(made).toBe(201);
      expect(await subscriptions()).toHaveLength(2);
      await page.getByRole('button', { name: 'Subscribe' }).click();
      await waitFor(async () => (await page.getByRole('region', { name: /^Subscription / }).count()) === 2, { description: 'both subscriptions listed', timeoutMs: 30_000 });
      await waitFor(async () => (await page.getByRole('tabpanel').getByRole('alert').count()) === 0, { description: 'the lost answer no longer shown as a failure', timeoutMs: 30_000 });
      await posts.settled();
      expect(await subscriptions()).toHaveLength(2);
    } finally {
      await page.context().close();
    }
  });

  it('creates one plan however often Create plan is clicked', async () => {
    const product = await api<{ id: string }>('POST', '/credit-products', { name: `Plan once ${randomUUID()}` });
    const planName = `Once ${randomUUID()}`;
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plans' }).click();
      const form = page.locator('form', { has: page.getByRole('button', { name: 'Create plan' }) });
      await form.getByLabel('Plan name').fill(planName);
      await form.getByRole('button', { name: 'Add credit product to plan' }).click();
      await form.getByLabel('Credit product', { exact: true }).selectOption({ value: product.id });
      await form.getByLabel('Credits per period').fill('2');
      const posts = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith('/v1/plans'));
      await form.getByRole('button', { name: 'Create plan' }).dblclick();
      await posts.settled();
      await untilText(page.getByRole('table', { name: 'Plans' }), (text) => text.includes(planName), 'the plan created');
      expect(posts.counts.started).toBe(1);
      const plans = await api<{ items: Array<{ name: string }> }>('GET', '/plans?limit=500');
      expect(plans.items.filter((plan) => plan.name === planName)).toHaveLength(1);
    } finally {
      await page.context().close();
    }
  });

  it('registers one endpoint and rotates its secret once however often the buttons are clicked', async () => {
    const hookUrl = `http://127.0.0.1:9/guards-${randomUUID()}`;
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
      await page.getByLabel('Endpoint URL').fill(hookUrl);
      const registrations = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith('/v1/webhook-endpoints'));
      await page.getByRole('button', { name: 'Register endpoint' }).dblclick();
      await registrations.settled();
      const card = page.getByRole('region', { name: `Endpoint ${hookUrl}` });
      await card.first().waitFor();
      const endpoints = await api<{ items: Array<{ url: string }> }>('GET', '/webhook-endpoints?limit=500');
      expect(endpoints.items.filter((endpoint) => endpoint.url === hookUrl)).toHaveLength(1);

      // Two rotations would leave the page showing whichever answer came last, maybe not the secret in force.
      const rotations = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith('/rotate-secret'));
      await card.getByRole('button', { name: 'Rotate secret' }).dblclick();
      await rotations.settled();
      await untilText(page.getByRole('status').filter({ hasText: 'Signing secret' }), (text) => text.includes('previous secret'), 'the rotated secret');
      expect(rotations.counts.started).toBe(1);
    } finally {
      await page.context().close();
    }
  });

  it("names each endpoint's controls by its URL, and asks before a second rotation stops the previous secret at once", async () => {
    const urls = [`http://127.0.0.1:9/named-a-${randomUUID()}`, `http://127.0.0.1:9/named-b-${randomUUID()}`];
    for (const url of urls) await api('POST', '/webhook-endpoints', { url, events: ['credit_balance.low'] });
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
      await page.getByRole('region', { name: `Endpoint ${urls[1]}` }).waitFor();
      // Every control of a card is told apart from the other cards' by name alone, its visible words first.
      for (const url of urls) {
        for (const words of ['Disable', 'Rotate secret', 'Show deliveries', 'Delete', 'Send test']) {
          expect([words, url, await page.getByRole('button', { name: `${words} ${url}`, exact: true }).count()]).toEqual([words, url, 1]);
        }
        expect(await page.getByRole('combobox', { name: `Test event for ${url}`, exact: true }).count()).toBe(1);
      }

      const card = page.getByRole('region', { name: `Endpoint ${urls[0]}` });
      const rotations = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith('/rotate-secret'));
      const rotate = card.getByRole('button', { name: `Rotate secret ${urls[0]}`, exact: true });
      // The first rotation needs no confirmation: the secret it replaces keeps signing for the grace period.
      await rotate.click();
      await untilText(card, (text) => text.includes('the previous secret signs too until'), 'the previous secret in its grace period');
      expect(rotations.counts.started).toBe(1);
      const first = await page.getByLabel(`Signing secret for ${urls[0]}`).inputValue();

      // A second one would stop that previous secret at once: asked first, and kept is nothing sent.
      await rotate.click();
      const confirm = page.getByRole('dialog', { name: `Rotate the secret again: ${urls[0]}` });
      await untilText(confirm, (text) => text.includes('stops signing at once'), 'the confirmation');
      await expectAccessible(page, 'the confirmation of a second rotation');
      await confirm.getByRole('button', { name: 'Keep both secrets' }).click();
      await waitFor(async () => !(await confirm.isVisible()), { description: 'the confirmation closed', timeoutMs: 10_000 });
      expect(rotations.counts.started).toBe(1);
      await rotate.click();
      await confirm.getByRole('button', { name: 'Rotate secret' }).click();
      await untilText(page.getByRole('status').filter({ hasText: 'Signing secret' }), (text) => text.includes(urls[0]!), 'the new secret');
      await rotations.settled();
      expect(rotations.counts.started).toBe(2);
      await waitFor(async () => (await page.getByLabel(`Signing secret for ${urls[0]}`).inputValue()) !== first, { description: 'the new secret shown', timeoutMs: 10_000 });
    } finally {
      await page.context().close();
      const listed = await api<{ items: Array<{ id: string; url: string }> }>('GET', '/webhook-endpoints?limit=500');
      for (const endpoint of listed.items.filter((item) => urls.includes(item.url))) await api('DELETE', `/webhook-endpoints/${endpoint.id}`);
    }
  });

  it("says where a balance's recent consumption and ledger cannot be read, and keeps the last figures", async () => {
    const customerId = `unread-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Unread credits' });
    const balance = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    await api('POST', `/credit-balances/${balance.id}/top-ups`, { credits: '5', reason: 'kept in view' });
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Unread credits/ });
      const newest = card.getByRole('table', { name: 'Newest ledger entries' });
      await untilText(newest, (text) => text.includes('kept in view'), 'the newest ledger entries');
      // The connection goes: the next reads fail, and the card says so where its figures are.
      await page.context().setOffline(true);
      await card.getByRole('alert').first().waitFor({ timeout: 30_000 });
      expect(await newest.innerText()).toContain('kept in view');
      // The whole ledger, opened while nothing can be read, says why it shows nothing.
      const ledger = card.locator('details').filter({ has: page.getByText('Ledger', { exact: true }) });
      await ledger.getByText('Ledger', { exact: true }).click();
      await ledger.getByRole('alert').waitFor({ timeout: 30_000 });
      await page.context().setOffline(false);
      // The whole ledger is read once a minute while open, and at once when opened again.
      await ledger.getByText('Ledger', { exact: true }).click();
      await ledger.getByText('Ledger', { exact: true }).click();
      await waitFor(async () => (await card.getByRole('alert').count()) === 0, { description: 'the failures gone once reads succeed again', timeoutMs: 30_000 });
      await untilText(card.getByRole('table', { name: 'Ledger, page 1' }), (text) => text.includes('kept in view'), 'the whole ledger read');

      // The portal likewise, on its own balance card.
      const link = await api<{ url: string }>('POST', `/customers/${customerId}/portal-sessions`);
      const portal = await page.context().newPage();
      await portal.goto(link.url.replace(/^http:\/\/[^/]+/, stack.base));
      const portalCard = portal.getByRole('region', { name: 'Unread credits', exact: true });
      await untilText(portalCard.getByRole('table', { name: 'Recent activity' }), (text) => text.includes('kept in view'), 'the recent activity on the portal');
      await page.context().setOffline(true);
      await portalCard.getByRole('alert').first().waitFor({ timeout: 30_000 });
      expect(await portalCard.getByRole('table', { name: 'Recent activity' }).innerText()).toContain('kept in view');
      await page.context().setOffline(false);
    } finally {
      await page.context().close();
    }
  });

  it("starts each new screen at its heading and names it in the title, and keeps focus on the screen when a confirmed change takes its control away", async () => {
    const customerId = `focused-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Focus credits', consumption: [{ event: 'render', credits: '2' }] });
    await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    const planName = `Focus plan ${randomUUID()}`;
    const plan = await api<{ id: string }>('POST', '/plans', { name: planName, items: [{ productId: product.id, creditsPerPeriod: '1', period: 'month' }] });
    await api('POST', '/subscriptions', { customerId, planId: plan.id });
    await api('POST', '/usage-events', { events: [{ id: `${customerId}-render`, customerId, event: 'render', timestamp: new Date().toISOString() }] });
    const hookUrl = `http://127.0.0.1:9/focus-${randomUUID()}`;
    await api('POST', '/webhook-endpoints', { url: hookUrl, events: ['credit_balance.low'] });
    const page = await signedIn();
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
    try {
      // The customer's row link goes with the list: focus goes to the customer's heading.
      await nav('Customers').click();
      await page.getByLabel('Customer id').fill(customerId);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('link', { name: customerId, exact: true }).click();
      await untilFocused(page, 'H1', `Customer ${customerId}`);
      expect(await page.title()).toBe(`Customer ${customerId} – Tally console`);

      // A refunded charge's Refund button goes once the ledger is read again: focus goes to its balance's heading.
      const card = page.getByRole('region', { name: /Focus credits/ });
      await untilText(card.getByTestId('balance-amount'), (text) => text === '9', 'the grant and the render on the balance');
      await card.getByText('Ledger', { exact: true }).click();
      await card.getByRole('table', { name: 'Ledger, page 1' }).getByRole('button', { name: /^Refund 2 credits of render/ }).click();
      await page.getByRole('dialog', { name: 'Refund: Focus credits' }).getByRole('button', { name: 'Refund', exact: true }).click();
      await untilText(card.getByTestId('balance-amount'), (text) => text === '11', 'the refund on the balance');
      await waitFor(async () => (await card.getByRole('button', { name: /^Refund 2 credits/ }).count()) === 0, { description: 'the Refund button gone', timeoutMs: 30_000 });
      await untilFocused(page, 'H3', /^Focus credits/);

      // A canceled subscription loses its Cancel button: focus goes to the screen's heading.
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      await page.getByRole('button', { name: 'Cancel subscription' }).click();
      await page.getByRole('dialog', { name: `Cancel subscription: ${planName}` }).getByRole('button', { name: 'Cancel subscription' }).click();
      await untilText(page.getByRole('region', { name: /^Subscription / }), (text) => text.includes('Canceled'), 'the subscription canceled');
      await untilFocused(page, 'H1', `Customer ${customerId}`);

      await page.getByRole('link', { name: '← Customers' }).click();
      await untilFocused(page, 'H1', 'Customers');
      expect(await page.title()).toBe('Customers – Tally console');

      // A retired plan loses its Retire button.
      await nav('Plans').click();
      await untilFocused(page, 'H1', 'Plans');
      await page.getByRole('button', { name: `Retire ${planName}` }).click();
      await page.getByRole('dialog', { name: `Retire plan: ${planName}` }).getByRole('button', { name: 'Retire plan' }).click();
      await waitFor(async () => (await page.getByRole('button', { name: `Retire ${planName}` }).count()) === 0, { description: 'the Retire button gone', timeoutMs: 30_000 });
      await untilFocused(page, 'H1', 'Plans');

      // A deleted endpoint goes with its Delete button.
      await nav('Webhooks').click();
      await untilFocused(page, 'H1', 'Webhooks');
      expect(await page.title()).toBe('Webhooks – Tally console');
      await page.getByRole('region', { name: `Endpoint ${hookUrl}` }).getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('dialog', { name: `Delete endpoint: ${hookUrl}` }).getByRole('button', { name: 'Delete endpoint' }).click();
      await waitFor(async () => (await page.getByRole('region', { name: `Endpoint ${hookUrl}` }).count()) === 0, { description: 'the endpoint gone', timeoutMs: 30_000 });
      await untilFocused(page, 'H1', 'Webhooks');
    } finally {
      await page.context().close();
    }
  });

  it('says a created product was saved on the form it opens into, once, with focus at its heading', async () => {
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Catalog' }).click();
      await page.getByRole('link', { name: 'New credit product' }).click();
      const name = `Created ${randomUUID()}`;
      await page.getByLabel('Name', { exact: true }).fill(name);
      await page.getByLabel('Event name').fill('api_call');
      await page.getByLabel('Credits', { exact: true }).fill('1');
      await page.getByRole('button', { name: 'Create credit product' }).click();
      await untilFocused(page, 'H1', `Edit ${name}`);
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Save changes' }).waitFor();
      // Once: the same form opened again (reloaded, or come back to) has saved nothing yet.
      const opensUnsaved = async (how: string) => {
        await page.getByRole('heading', { name: `Edit ${name}` }).waitFor();
        expect({ how, saved: await page.getByText('Saved.', { exact: true }).count() }).toEqual({ how, saved: 0 });
      };
      await page.reload();
      await opensUnsaved('reloaded');
      await page.goBack();
      await page.getByRole('heading', { name: 'New credit product' }).waitFor();
      await page.goForward();
      await opensUnsaved('come back to');
    } finally {
      await page.context().close();
    }
  });

  it('sends one top-up however often its button is clicked', async () => {
    const customerId = `topped-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: `Top-ups ${randomUUID()}` });
    const balance = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: new RegExp(product.id) });
      await card.getByRole('button', { name: 'Top up' }).click();
      const dialog = page.getByRole('dialog', { name: /^Top up: / });
      await dialog.getByLabel('Credits').fill('5');
      const topUps = watchRequests(page, (request) => request.method() === 'POST' && request.url().endsWith(`/v1/credit-balances/${balance.id}/top-ups`));
      await dialog.getByRole('button', { name: 'Top up' }).dblclick();
      await topUps.settled();
      expect(topUps.counts.started).toBe(1);
      await untilText(card.getByTestId('balance-amount'), (text) => text === '15', 'the balance after one top-up');
    } finally {
      await page.context().close();
    }
  });

  it("edits a balance's name and warning limit once, the API's refusals beside their fields, and opens Add credit balance afresh", async () => {
    const customerId = `edited-${randomUUID()}`;
    const productName = `Editable ${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: productName });
    const balance = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    const stored = () => api<{ name: string; lowBalanceThreshold: string | null }>('GET', `/credit-balances/${balance.id}`);
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: new RegExp(product.id) });
      await untilText(card.getByTestId('balance-amount'), (text) => text === '10', 'the opened balance');
      await card.getByRole('button', { name: 'Edit balance' }).click();
      const dialog = page.getByRole('dialog', { name: `Edit balance: ${productName}` });
      expect([await dialog.getByLabel('Name').inputValue(), await dialog.getByLabel('Warning limit').inputValue()]).toEqual([productName, '']);
      await dialog.getByLabel('Warning limit').fill('lots');
      await dialog.getByRole('button', { name: 'Save balance' }).click();
      await dialog.locator('.field.has-error', { has: page.getByLabel('Warning limit') }).getByRole('alert').waitFor();
      expect(await dialog.getByLabel('Warning limit').getAttribute('aria-invalid')).toBe('true');
      await dialog.getByLabel('Name').fill('Renamed credits');
      await dialog.getByLabel('Warning limit').fill('5');
      const patches = watchRequests(page, (request) => request.method() === 'PATCH' && request.url().includes('/v1/credit-balances/'));
      await dialog.getByRole('button', { name: 'Save balance' }).dblclick();
      await patches.settled();
      expect(patches.counts.started).toBe(1);
      await card.getByRole('heading', { name: /^Renamed credits/ }).waitFor();
      await untilText(card, (text) => /Warning limit\s+5\b/.test(text), 'the new warning limit on the card');
      expect(await stored()).toMatchObject({ name: 'Renamed credits', lowBalanceThreshold: '5' });
      // Emptied, the limit goes.
      await card.getByRole('button', { name: 'Edit balance' }).click();
      const again = page.getByRole('dialog', { name: 'Edit balance: Renamed credits' });
      expect(await again.getByLabel('Warning limit').inputValue()).toBe('5');
      await again.getByLabel('Warning limit').fill('');
      await again.getByRole('button', { name: 'Save balance' }).click();
      await untilText(card, (text) => /Warning limit\s+none/.test(text), 'no warning limit on the card');
      expect(await stored()).toMatchObject({ lowBalanceThreshold: null });

      // Add credit balance, refused and canceled, opens again as new: nothing typed or refused stays.
      await page.getByRole('button', { name: 'Add credit balance' }).click();
      const add = page.getByRole('dialog', { name: 'Add credit balance' });
      await untilText(add.getByLabel('Credit product'), (text) => text.includes(productName), 'the product in the dialog');
      await add.getByLabel('Credit product').selectOption({ label: productName });
      await add.getByLabel('Starting balance').fill('plenty');
      await add.getByRole('button', { name: 'Add', exact: true }).click();
      await add.getByRole('alert').first().waitFor();
      await add.getByRole('button', { name: 'Cancel' }).click();
      await page.getByRole('button', { name: 'Add credit balance' }).click();
      await waitFor(async () => (await add.getByLabel('Starting balance').inputValue()) === '0' && (await add.getByRole('alert').count()) === 0, {
        description: 'the dialog opened afresh',
        timeoutMs: 10_000,
      });
    } finally {
      await page.context().close();
    }
  });

  it("never undoes a settings change made meanwhile from an Edit balance dialog opened before it, nor loses what the operator typed: a change of another field is saved on it, one of the same field is said and saved on a second Save", async () => {
    const customerId = `stale-edit-${randomUUID()}`;
    const productName = `Stale credits ${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: productName });
    // At 80 with a warning limit of 100: warned once already.
    const balance = await api<{ id: string; revision: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '80', lowBalanceThreshold: '100' });
    const stored = () => api<{ name: string; lowBalanceThreshold: string | null; revision: string }>('GET', `/credit-balances/${balance.id}?consistent=true`);
    const page = await signedIn();
    try {
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: new RegExp(product.id) });
      await untilText(card.getByTestId('balance-amount'), (text) => text === '80', 'the opened balance');
      // Its title follows the balance's name, which changes here.
      const dialog = page.getByRole('dialog', { name: /^Edit balance: / });
      const patches: Array<{ ifMatch: string | undefined; body: unknown }> = [];
      page.on('request', (request) => {
        if (request.method() === 'PATCH' && request.url().includes(`/v1/credit-balances/${balance.id}`)) patches.push({ ifMatch: request.headers()['if-match'], body: request.postDataJSON() });
      });

      // Operator A opens the dialog; operator B then lowers the limit.
      await card.getByRole('button', { name: 'Edit balance' }).click();
      expect(await dialog.getByLabel('Warning limit').inputValue()).toBe('100');
      const read = await stored();
      const lowered = await api<{ revision: string }>('PATCH', `/credit-balances/${balance.id}`, { lowBalanceThreshold: '50' });
      // A renames, the limit untouched in the dialog: sent against the version read, the name alone;
      // refused (412), then sent again on B's version, unasked: B's limit is no field A changed.
      await dialog.getByLabel('Name').fill('Renamed by A');
      await dialog.getByRole('button', { name: 'Save balance' }).click();
      await card.getByRole('heading', { name: /^Renamed by A/ }).waitFor();
      await waitFor(async () => !(await dialog.isVisible()), { description: 'the dialog closed once saved', timeoutMs: 10_000 });
      expect(patches).toEqual([
        { ifMatch: `"${read.revision}"`, body: { name: 'Renamed by A' } },
        { ifMatch: `"${lowered.revision}"`, body: { name: 'Renamed by A' } },
      ]);
      expect(await stored()).toMatchObject({ name: 'Renamed by A', lowBalanceThreshold: '50' });
      await untilText(card, (text) => /Warning limit\s+50\b/.test(text), "B's warning limit on the card");

      // Both rename: B first. A's save is not sent again; the dialog names B's name and keeps A's typing.
      await card.getByRole('button', { name: 'Edit balance' }).click();
      expect(await dialog.getByLabel('Name').inputValue()).toBe('Renamed by A');
      const renamed = await api<{ revision: string }>('PATCH', `/credit-balances/${balance.id}`, { name: 'Renamed by B' });
      await dialog.getByLabel('Name').fill('Renamed by A again');
      await dialog.getByRole('button', { name: 'Save balance' }).click();
      await untilText(dialog.getByRole('alert'), (text) => /changed meanwhile/i.test(text) && text.includes('"Renamed by B"'), "the dialog naming B's name");
      expect(patches).toHaveLength(3);
      expect(await dialog.getByLabel('Name').inputValue()).toBe('Renamed by A again');
      expect(await dialog.getByLabel('Warning limit').inputValue()).toBe('50');
      expect(await stored()).toMatchObject({ name: 'Renamed by B', lowBalanceThreshold: '50' });
      // Saved again: A's name, on B's version.
      await dialog.getByRole('button', { name: 'Save balance' }).click();
      await card.getByRole('heading', { name: /^Renamed by A again/ }).waitFor();
      await waitFor(async () => !(await dialog.isVisible()), { description: 'the dialog closed once saved', timeoutMs: 10_000 });
      expect(patches.slice(3)).toEqual([{ ifMatch: `"${renamed.revision}"`, body: { name: 'Renamed by A again' } }]);
      expect(await stored()).toMatchObject({ name: 'Renamed by A again', lowBalanceThreshold: '50' });

      // A balance that only moved meanwhile (a top-up) keeps its settings: the save goes through on the new version, unasked.
      await card.getByRole('button', { name: 'Edit balance' }).click();
      expect(await dialog.getByLabel('Warning limit').inputValue()).toBe('50');
      await api('POST', `/credit-balances/${balance.id}/top-ups`, { credits: '1' });
      await dialog.getByLabel('Warning limit').fill('40');
      await dialog.getByRole('button', { name: 'Save balance' }).click();
      await untilText(card, (text) => /Warning limit\s+40\b/.test(text), 'the new warning limit on the card');
      expect(await dialog.isVisible()).toBe(false);
      expect(patches.slice(4).map((sent) => sent.body)).toEqual([{ lowBalanceThreshold: '40' }, { lowBalanceThreshold: '40' }]);
      expect(await stored()).toMatchObject({ name: 'Renamed by A again', lowBalanceThreshold: '40' });
    } finally {
      await page.context().close();
    }
  });

  it("shows the API's refusal of a plan, a subscription, its terms and an endpoint beside the field it names, else for the form, until it is sent again", async () => {
    const customerId = `refused-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name: `Refused credits ${randomUUID()}` });
    const planName = `Refused plan ${randomUUID()}`;
    const plan = await api<{ id: string }>('POST', '/plans', { name: planName, items: [{ productId: product.id, creditsPerPeriod: '1', period: 'month' }] });
    await api('POST', '/subscriptions', { customerId, planId: plan.id });
    const page = await signedIn();
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
    const fieldError = (within: Locator, label: string) => within.locator('.field.has-error', { has: page.getByLabel(label, { exact: true }) }).getByRole('alert');
    try {
      // A plan's credits that are no number: under that field; sent right, the refusal goes.
      await nav('Plans').click();
      const planForm = page.locator('form', { has: page.getByRole('button', { name: 'Create plan' }) });
      const newPlan = `Refused at first ${randomUUID()}`;
      await planForm.getByLabel('Plan name').fill(newPlan);
      await planForm.getByRole('button', { name: 'Add credit product to plan' }).click();
      await planForm.getByLabel('Credit product', { exact: true }).selectOption({ value: product.id });
      await planForm.getByLabel('Credits per period').fill('lots');
      await planForm.getByRole('button', { name: 'Create plan' }).click();
      await fieldError(planForm, 'Credits per period').waitFor({ timeout: 10_000 });
      expect(await planForm.getByLabel('Credits per period').getAttribute('aria-invalid')).toBe('true');
      await expectAccessible(page, 'a plan refused');
      await planForm.getByLabel('Credits per period').fill('5');
      await planForm.getByRole('button', { name: 'Create plan' }).click();
      await untilText(page.getByRole('table', { name: 'Plans' }), (text) => text.includes(newPlan), 'the plan created');
      await noAlertIn(planForm, 'the refusal gone once the plan is made');

      // New terms that are no number: the dialog says so as a whole, and stays open.
      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      await page.getByRole('button', { name: 'Change terms' }).click();
      const terms = page.getByRole('dialog', { name: `Change terms: ${planName}` });
      await terms.getByLabel('Credits per period for this subscription').fill('lots');
      await terms.getByRole('button', { name: 'Save terms' }).click();
      await untilText(terms.getByRole('alert'), (text) => text.includes('overrides'), 'the refusal of the terms');
      await expectAccessible(page, 'new terms refused');
      await terms.getByLabel('Credits per period for this subscription').fill('3');
      await terms.getByRole('button', { name: 'Save terms' }).click();
      await untilText(page.getByRole('table', { name: 'Terms by period' }), (text) => text.includes('3'), 'the new terms');

      // A plan retired since the tab read it: Subscribe is refused for the form as a whole.
      const subscribeForm = page.locator('form', { has: page.getByRole('button', { name: 'Subscribe' }) });
      await untilText(subscribeForm.getByLabel('Plan', { exact: true }), (text) => text.includes(planName), 'the plan to subscribe to');
      await subscribeForm.getByLabel('Plan', { exact: true }).selectOption({ label: planName });
      await api('POST', `/plans/${plan.id}/retire`);
      await subscribeForm.getByRole('button', { name: 'Subscribe' }).click();
      await subscribeForm.getByRole('alert').waitFor({ timeout: 10_000 });
      expect(await subscribeForm.locator('.field.has-error').count()).toBe(0);

      // An endpoint whose URL is empty: under the URL; sent right, the refusal goes.
      await nav('Webhooks').click();
      const hookForm = page.locator('form', { has: page.getByRole('button', { name: 'Register endpoint' }) });
      await hookForm.getByLabel('Endpoint URL').fill(' ');
      await hookForm.getByRole('button', { name: 'Register endpoint' }).click();
      await fieldError(hookForm, 'Endpoint URL').waitFor({ timeout: 10_000 });
      await expectAccessible(page, 'an endpoint refused');
      const hookUrl = `http://127.0.0.1:9/refused-${randomUUID()}`;
      await hookForm.getByLabel('Endpoint URL').fill(hookUrl);
      await hookForm.getByRole('button', { name: 'Register endpoint' }).click();
      await page.getByRole('region', { name: `Endpoint ${hookUrl}` }).waitFor({ timeout: 10_000 });
      await noAlertIn(page.getByRole('main'), 'the refusal gone once the endpoint is registered');
    } finally {
      await page.context().close();
    }
  });

  it('says when plans, products, subscriptions, endpoints, deliveries or the catalog cannot be read, and stops saying so once a later read succeeds', async () => {
    const customerId = `unlisted-${randomUUID()}`;
    // More than the catalog's page of 25, so it has a next page to read.
    await Promise.all(Array.from({ length: 26 }, (_, index) => api('POST', '/credit-products', { name: `Listed ${index}` })));
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Unlisted credits' });
    const planName = `Unlisted plan ${randomUUID()}`;
    const plan = await api<{ id: string }>('POST', '/plans', { name: planName, items: [{ productId: product.id, creditsPerPeriod: '1', period: 'month' }] });
    await api('POST', '/subscriptions', { customerId, planId: plan.id });
    const hookUrl = `http://127.0.0.1:9/unlisted-${randomUUID()}`;
    const endpoint = await api<{ id: string }>('POST', '/webhook-endpoints', { url: hookUrl, events: ['credit_balance.low'] });
    const page = await signedIn();
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
    // Each read is lost in the network once: the page hears the connection failed.
    const loseOnce = (pathname: string) => page.route((url) => url.pathname === pathname, (route) => route.abort('failed'), { times: 1 });
    try {
      // The plans are lost; canceling the subscription reads both again, and the failure goes.
      await openCustomer(page, customerId);
      await loseOnce('/v1/plans');
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      await page.getByRole('tabpanel').getByRole('alert').waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Cancel subscription' }).click();
      await page.getByRole('dialog', { name: /^Cancel subscription: / }).getByRole('button', { name: 'Cancel subscription' }).click();
      await untilText(page.getByRole('region', { name: /^Subscription / }), (text) => text.includes('Canceled'), 'the subscription canceled');
      await noAlertIn(page.getByRole('tabpanel'), 'the lost plans no longer said once they are read');

      // The products are lost; retiring a plan reads both again, and the failure goes.
      await loseOnce('/v1/credit-products');
      await nav('Plans').click();
      await page.getByRole('main').getByRole('alert').waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: `Retire ${planName}` }).click();
      await page.getByRole('dialog', { name: `Retire plan: ${planName}` }).getByRole('button', { name: 'Retire plan' }).click();
      await waitFor(async () => (await page.getByRole('button', { name: `Retire ${planName}` }).count()) === 0, { description: 'the plan retired', timeoutMs: 30_000 });
      await noAlertIn(page.getByRole('main'), 'the lost products no longer said once they are read');

      // An endpoint's deliveries are lost; Refresh deliveries reads them again.
      await nav('Webhooks').click();
      const card = page.getByRole('region', { name: `Endpoint ${hookUrl}` });
      await loseOnce(`/v1/webhook-endpoints/${endpoint.id}/deliveries`);
      await card.getByRole('button', { name: 'Show deliveries' }).click();
      await card.getByRole('alert').waitFor({ timeout: 10_000 });
      await card.getByRole('button', { name: 'Refresh deliveries' }).click();
      await card.getByRole('table', { name: 'Recent deliveries' }).getByText('Nothing sent yet.').waitFor({ timeout: 10_000 });
      await noAlertIn(card, 'the lost deliveries no longer said once they are read');
      // The endpoints, read again after Disable, are lost; deleting one reads them again.
      await loseOnce('/v1/webhook-endpoints');
      await card.getByRole('button', { name: 'Disable' }).click();
      await page.getByRole('main').getByRole('alert').waitFor({ timeout: 10_000 });
      await card.getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('dialog', { name: `Delete endpoint: ${hookUrl}` }).getByRole('button', { name: 'Delete endpoint' }).click();
      await waitFor(async () => (await card.count()) === 0, { description: 'the endpoint gone', timeoutMs: 30_000 });
      await noAlertIn(page.getByRole('main'), 'the lost endpoints no longer said once they are read');

      await nav('Catalog').click();
      await untilText(page.getByRole('table', { name: 'Credit products' }), (text) => text.includes('Listed'), 'the catalog');
      await loseOnce('/v1/credit-products');
      await page.getByRole('button', { name: 'Next page' }).click();
      await page.getByRole('main').getByRole('alert').waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Previous page' }).click();
      await noAlertIn(page.getByRole('main'), 'the failure gone once the catalog is read');
    } finally {
      await page.context().close();
    }
  });
});
