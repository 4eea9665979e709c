import { randomUUID } from 'node:crypto';
import { waitFor, type Locator, type Page } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, openCustomer, PHONE_VIEWPORT, startConsoleStack, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * The console and the portal at their edges, in Chromium against the real main job: ids beyond
 * ASCII and without spaces, figures too long for their card, a phone's width, a link typed by
 * hand, a proxy's HTML error page and no answer at all (made in the browser's network), and the
 * first read still on its way.
 */
jest.setTimeout(240_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;
/** The largest credits and price the API takes: the longest a bundle's text can be. */
const HUGE_BUNDLE = { id: 'huge', credits: '999999999999999.999999', price: { amount: '999999999999.99', currency: 'EUR' } };
const TINY_BUNDLE = { id: 'tiny', credits: '0.000001', price: { amount: '0.01', currency: 'EUR' } };

describe('the console and the portal at their edges', () => {
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_edges', roles: 'projector,api', adminKey: ADMIN_KEY, env: { TALLY_CATALOG_REFRESH_MS: '200', TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'true' } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  const api = <T>(method: string, url: string, body?: unknown) => stack.api<T>(method, url, body);

  /** A customer with one balance of a new product, and the portal link that admits the customer. */
  async function customerWithBalance(customerId: string, product: Record<string, unknown>): Promise<{ productId: string; url: string }> {
    const { id: productId } = await api<{ id: string }>('POST', '/credit-products', product);
    await api('POST', `/customers/${encodeURIComponent(customerId)}/credit-balances`, { productId, startingBalance: '5' });
    const { url } = await api<{ url: string }>('POST', `/customers/${encodeURIComponent(customerId)}/portal-sessions`);
    return { productId, url: url.replace(/^http:\/\/[^/]+/, stack.base) };
  }

  async function page(viewport: { width: number; height: number }): Promise<Page> {
    return (await stack.browser.newContext({ viewport })).newPage();
  }

  /**
   * The page's width beside the window's (wider scrolls the whole page sideways), and for a
   * failure's message the text reaching past the window, with its element.
   */
  const widths = (on: Page) =>
    // A string: the tests' TypeScript has no DOM types (the page runs it, not node).
    on.evaluate<{ page: number; window: number; past: string[] }>(`(() => {
      // Text reaching out of its element counts too: its element's box may stay within the window.
      const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      const past = [];
      for (let text = texts.nextNode(); text !== null; text = texts.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(text);
        const right = range.getBoundingClientRect().right;
        const element = text.parentElement;
        // A table scrolling in its own box (a phone's ledger) does not widen the page.
        if (right > window.innerWidth + 0.5 && element.closest('.table-scroll') === null) past.push(element.tagName + '.' + element.className + ' ' + Math.round(right) + ' ' + text.textContent.slice(0, 40));
      }
      return { page: document.documentElement.scrollWidth, window: window.innerWidth, past: past.slice(0, 5) };
    })()`);

  /** Whether a click at the element's centre reaches it, not something drawn over it. */
  const hitAtCentre = (element: Locator) =>
    element.evaluate((target) => {
      const box = target.getBoundingClientRect();
      const hit = target.ownerDocument.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
      return hit !== null && (hit === target || target.contains(hit)) ? 'itself' : `${hit?.tagName} ${hit?.textContent?.slice(0, 40)}`;
    });

  it('opens the portal of a customer whose id is beyond ASCII and shows its balance', async () => {
    const customerId = `müller-${randomUUID()}`;
    const { url } = await customerWithBalance(customerId, { name: 'Umlaut credits' });
    const portal = await page(PHONE_VIEWPORT);
    try {
      await portal.goto(url);
      await untilText(portal.getByRole('region', { name: 'Umlaut credits', exact: true }).getByTestId('balance-amount'), (text) => text === '5', 'the balance on the portal');
      await untilText(portal.locator('header'), (text) => text.includes(customerId), 'the customer named');
      expect(await portal.getByRole('alert').allInnerTexts()).toEqual([]);
    } finally {
      await portal.context().close();
    }
  });

  it("sells a bundle whose id is a JavaScript object member's name, constructor", async () => {
    const customerId = `member-${randomUUID()}`;
    const bundle = { id: 'constructor', credits: '10', price: { amount: '1.00', currency: 'EUR' } };
    const { url } = await customerWithBalance(customerId, { name: 'Member credits', bundles: [bundle] });
    const portal = await page(DESKTOP_VIEWPORT);
    const errors: string[] = [];
    portal.on('pageerror', (error) => errors.push(String(error)));
    try {
      await portal.goto(url);
      const card = portal.getByRole('region', { name: 'Member credits', exact: true });
      await card.getByRole('button', { name: 'Buy 10 credits for 1.00 EUR of Member credits' }).click();
      await portal.getByRole('dialog', { name: 'Buy 10 credits for 1.00 EUR' }).getByRole('button', { name: 'Buy', exact: true }).click();
      await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 10 credits for 1.00 EUR. Your balance is now 15.', 'the purchase');
      expect({ errors, alerts: await card.getByRole('alert').allInnerTexts() }).toEqual({ errors: [], alerts: [] });
    } finally {
      await portal.context().close();
    }
  });

  it("keeps a large bundle's text in its card, its Buy button clickable, and the page a phone's width", async () => {
    const customerId = `bundles-${randomUUID()}`;
    const { url } = await customerWithBalance(customerId, { name: 'Bundle credits', bundles: [HUGE_BUNDLE, TINY_BUNDLE] });
    const portal = await page(DESKTOP_VIEWPORT);
    try {
      await portal.goto(url);
      const card = portal.getByRole('region', { name: 'Bundle credits', exact: true });
      const buttons = [card.getByRole('button', { name: 'Buy 999,999,999,999,999.999999 credits for 999,999,999,999.99 EUR' }), card.getByRole('button', { name: 'Buy 0.000001 credits for 0.01 EUR' })];
      await buttons[0]!.waitFor({ timeout: 30_000 });
      for (const viewport of [DESKTOP_VIEWPORT, PHONE_VIEWPORT]) {
        await portal.setViewportSize(viewport);
        for (const button of buttons) expect({ viewport, hit: await hitAtCentre(button) }).toEqual({ viewport, hit: 'itself' });
        const width = await widths(portal);
        expect({ viewport, fits: width.page <= width.window, width }).toEqual({ viewport, fits: true, width });
      }
      // Auto-recharge offers the same bundles in the same words.
      await card.locator('summary').filter({ hasText: 'Auto-recharge' }).click();
      await waitFor(async () => (await card.getByLabel('Bundle').locator('option').allInnerTexts()).includes('999,999,999,999,999.999999 credits for 999,999,999,999.99 EUR'), {
        description: 'the price grouped in the bundle choice',
        timeoutMs: 30_000,
      });
      await expectAccessible(portal, 'the portal with a large bundle on a phone');
    } finally {
      await portal.context().close();
    }
  });

  it('says it is loading until the first read is answered', async () => {
    const customerId = `slow-${randomUUID()}`;
    const { url, productId } = await customerWithBalance(customerId, { name: 'Slow credits' });
    const portal = await page(PHONE_VIEWPORT);
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    try {
      await portal.route('**/v1/**', async (route) => {
        await released;
        await route.continue();
      });
      await portal.goto(url);
      await untilText(portal.getByRole('status').filter({ hasText: 'Loading' }), (text) => text === 'Loading…', 'the loading state');
      release();
      await untilText(portal.getByRole('region', { name: 'Slow credits', exact: true }).getByTestId('balance-amount'), (text) => text === '5', 'the balance once read');
      expect(await portal.getByRole('status').filter({ hasText: 'Loading…' }).count()).toBe(0);
    } finally {
      release();
      await portal.context().close();
    }
    // The console's Subscriptions tab likewise: loading until its first read, never "No
    // subscriptions." before it nor beside a failed one (the customer has none, so both would show it).
    const operator = await page(DESKTOP_VIEWPORT);
    let releaseSubscriptions: () => void = () => undefined;
    const subscriptionsReleased = new Promise<void>((resolve) => (releaseSubscriptions = resolve));
    const subscriptionsRead = (address: URL) => address.pathname.endsWith('/subscriptions');
    try {
      const planName = `Slow plan ${randomUUID()}`;
      await api('POST', '/plans', { name: planName, items: [{ productId, creditsPerPeriod: '10', period: 'month' }] });
      await stack.signIn(operator);
      await openCustomer(operator, customerId);
      const panel = operator.getByRole('tabpanel');
      const none = panel.getByText('No subscriptions.');
      const loading = panel.getByRole('status').filter({ hasText: 'Loading' });
      await operator.route(subscriptionsRead, async (route) => {
        await subscriptionsReleased;
        await route.continue();
      });
      await operator.getByRole('tab', { name: 'Subscriptions' }).click();
      await untilText(loading, (text) => text === 'Loading…', 'the Subscriptions tab loading');
      expect(await none.count()).toBe(0);
      releaseSubscriptions();
      await untilText(none, (text) => text === 'No subscriptions.', 'no subscriptions, once read');
      expect(await loading.count()).toBe(0);

      // Read again after a Subscribe (answered as made already, so the page reads again), and the
      // read fails: the failure alone, not "No subscriptions." beside it.
      await operator.unroute(subscriptionsRead);
      await operator.route(subscriptionsRead, (route) =>
        route.request().method() === 'POST'
          ? route.fulfill({ status: 409, contentType: 'application/json', body: JSON.stringify({ error: 'subscription_already_exists', message: 'made already' }) })
          : route.fulfill({ status: 502, contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' }),
      );
      await untilText(panel.getByLabel('Plan', { exact: true }), (text) => text.includes(planName), 'the plan to subscribe to');
      await panel.getByRole('button', { name: 'Subscribe' }).click();
      await untilText(panel.getByRole('alert'), (text) => text === 'The service is unavailable (502). Try again in a moment.', 'the failed read again in words');
      expect({ none: await none.count(), loading: await loading.count() }).toEqual({ none: 0, loading: 0 });

      // Opened again (a fresh tab) with its first read failing: the failure alone.
      await operator.getByRole('tab', { name: 'Credits' }).click();
      await operator.getByRole('tab', { name: 'Subscriptions' }).click();
      await untilText(panel.getByRole('alert'), (text) => text === 'The service is unavailable (502). Try again in a moment.', 'the failed read in words');
      expect({ none: await none.count(), loading: await loading.count() }).toEqual({ none: 0, loading: 0 });
    } finally {
      releaseSubscriptions();
      await operator.context().close();
    }
  });

  it("says a proxy's HTML 502 and an unreachable service in words, and nothing of them once answered again", async () => {
    const customerId = `proxied-${randomUUID()}`;
    const { url } = await customerWithBalance(customerId, { name: 'Proxied credits' });
    const portal = await page(DESKTOP_VIEWPORT);
    const balances = (address: URL) => address.pathname.endsWith('/credit-balances');
    try {
      await portal.goto(url);
      const amount = portal.getByRole('region', { name: 'Proxied credits', exact: true }).getByTestId('balance-amount');
      await untilText(amount, (text) => text === '5', 'the balance');
      const alerts = portal.locator('main > [role=alert]');
      await portal.route(balances, (route) => route.fulfill({ status: 502, contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' }));
      await untilText(alerts, (text) => text === 'The service is unavailable (502). Try again in a moment.', "the proxy's 502 in words");
      await portal.unroute(balances);
      await portal.route(balances, (route) => route.abort('connectionrefused'));
      await untilText(alerts, (text) => text === 'Could not reach the service. Check the connection.', 'the unreachable service in words');
      await portal.unroute(balances);
      await waitFor(async () => (await alerts.count()) === 0, { description: 'the alert gone once answered', timeoutMs: 30_000 });
      expect(await amount.innerText()).toBe('5');
    } finally {
      await portal.context().close();
    }
  });

  it('shows a list for a link typed with a bare %, on opening and on a change of the hash', async () => {
    const operator = await page(DESKTOP_VIEWPORT);
    const errors: string[] = [];
    operator.on('pageerror', (error) => errors.push(String(error)));
    try {
      await stack.signIn(operator);
      // Opened afresh (a page of its own, signed in by the context's cookie), not as a change of hash.
      const opened = await operator.context().newPage();
      opened.on('pageerror', (error) => errors.push(String(error)));
      await opened.goto(`${stack.base}/console#/customers/100%`);
      await opened.getByRole('heading', { level: 1, name: 'Customers' }).waitFor();
      await operator.evaluate("window.location.hash = '#/catalog'");
      await operator.getByRole('heading', { level: 1, name: 'Catalog' }).waitFor();
      await operator.evaluate("window.location.hash = '#/customers/%E0%A4%A'");
      await operator.getByRole('heading', { level: 1, name: 'Customers' }).waitFor();
      expect(errors).toEqual([]);
    } finally {
      await operator.context().close();
    }
  });

  it("has focus on a new screen's heading as soon as the heading shows, never after", async () => {
    const operator = await page(DESKTOP_VIEWPORT);
    try {
      await stack.signIn(operator);
      await operator.getByRole('heading', { level: 1, name: 'Customers' }).waitFor();
      // What has focus when the new heading first appears in the page (a mutation observer runs
      // before the browser paints): focus moved later could land after the operator, or a test,
      // has already chosen a field, and pull it away from what they type.
      const focusWhenShown = await operator.evaluate<string>(`new Promise((resolve) => {
        const observer = new MutationObserver(() => {
          const heading = document.querySelector('main h1');
          if (heading === null || heading.textContent !== 'Catalog') return;
          observer.disconnect();
          const focused = document.activeElement;
          resolve(focused === heading ? 'the heading' : (focused?.tagName ?? 'nothing'));
        });
        observer.observe(document.body, { childList: true, subtree: true, characterData: true });
        window.location.hash = '#/catalog';
      })`);
      expect(focusWhenShown).toBe('the heading');
    } finally {
      await operator.context().close();
    }
  });

  it("keeps a customer's page a phone's width whatever the length of its ids and names", async () => {
    const customerId = `customer-${'x'.repeat(150)}-${randomUUID()}`;
    const productId = `long-product-${'p'.repeat(60)}`;
    await customerWithBalance(customerId, { id: productId, name: 'A very long product name '.repeat(6).trim(), consumption: [{ event: 'call', credits: '1' }] });
    const operator = await page(PHONE_VIEWPORT);
    try {
      await stack.signIn(operator);
      await operator.goto(`${stack.base}/console#/customers/${encodeURIComponent(customerId)}`);
      const card = operator.getByRole('region', { name: /A very long product name/ });
      await untilText(card.getByTestId('balance-amount'), (text) => text === '5', 'the balance');
      await card.getByText('Monthly statement').click();
      await card.getByRole('table', { name: /^Statement for/ }).waitFor();
      await operator.getByRole('button', { name: 'Create portal link' }).click();
      await operator.getByLabel('Portal link').waitFor();
      const width = await widths(operator);
      expect({ fits: width.page <= width.window, width }).toEqual({ fits: true, width });
      await expectAccessible(operator, 'a customer with long ids on a phone');
      // A caption says the whole of what it says within the window.
      const caption = await card.getByRole('table', { name: /^Statement for/ }).locator('caption').evaluate((element) => element.getBoundingClientRect().right);
      expect(caption).toBeLessThanOrEqual(width.window);
    } finally {
      await operator.context().close();
    }
  });

  it('shows the portal link or why it was not made, never the one beside the other, and is busy meanwhile', async () => {
    const customerId = `linked-${randomUUID()}`;
    await customerWithBalance(customerId, { name: 'Linked credits' });
    const operator = await page(DESKTOP_VIEWPORT);
    const sessions = (address: URL) => address.pathname.endsWith('/portal-sessions');
    try {
      await stack.signIn(operator);
      await operator.goto(`${stack.base}/console#/customers/${customerId}`);
      const create = operator.getByRole('button', { name: 'Create portal link' });
      const link = operator.getByLabel('Portal link');
      const refusal = operator.locator('main [role=alert]').filter({ hasText: 'the link service is unavailable' });
      const refuse = () => operator.route(sessions, (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'unavailable', message: 'the link service is unavailable' }) }));

      await refuse();
      await create.click();
      await refusal.waitFor();
      await operator.unroute(sessions);
      // Held until the button is seen busy: a second click meanwhile would make a second link.
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      await operator.route(sessions, async (route) => {
        await released;
        await route.continue();
      });
      await create.click();
      await waitFor(() => create.isDisabled(), { description: 'the button busy while the link is made', timeoutMs: 10_000 });
      expect(await refusal.count()).toBe(0);
      release();
      await link.waitFor();
      expect(await create.isDisabled()).toBe(false);
      expect(await refusal.count()).toBe(0);
      await operator.unroute(sessions);

      await refuse();
      await create.click();
      await refusal.waitFor();
      expect(await link.count()).toBe(0);
    } finally {
      await operator.context().close();
    }
  });

  it('lists every webhook endpoint, the 501st too: a list shown whole is read a page of 500 after another', async () => {
    const marker = `edges-${randomUUID()}`;
    // One more than a list answers at once; nothing delivers (no webhooks role), so the port is never called.
    for (let from = 0; from < 501; from += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, 501 - from) }, (_, i) => api('POST', '/webhook-endpoints', { url: `http://127.0.0.1:9/${marker}/${from + i}`, events: ['credit_balance.low'] })),
      );
    }
    const operator = await page(DESKTOP_VIEWPORT);
    try {
      await stack.signIn(operator);
      await operator.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
      const endpoints = operator.getByRole('region', { name: new RegExp(`^Endpoint http://127\\.0\\.0\\.1:9/${marker}/`) });
      await waitFor(async () => (await endpoints.count()) >= 500, { description: 'the endpoints listed', timeoutMs: 60_000 });
      // The page has settled on what it read: 501, not the first page's 500.
      await waitFor(async () => (await endpoints.count()) === 501, { description: 'all 501 endpoints listed', timeoutMs: 15_000 });
      expect(await endpoints.count()).toBe(501);
    } finally {
      await operator.context().close();
    }
  });
});
