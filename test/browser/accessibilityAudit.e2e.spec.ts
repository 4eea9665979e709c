import { randomUUID } from 'node:crypto';
import { auditAccessibility, launchChromium, waitFor, type Browser } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, PHONE_VIEWPORT, startConsoleStack, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * The audit every photographed screen passes (startConsoleStack's `photograph`) finds what it is
 * there to find: on a page with the faults the console and the portal once had or could have, it
 * names each by its rule and element. Without this, an audit that found nothing could pass them all.
 */
jest.setTimeout(180_000);

describe('auditAccessibility', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('names an unlabelled control, a missing level-one heading and a scrolling table no keyboard can reach', async () => {
    // axe needs a page of a context (browser.newPage's own context is refused).
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.setContent(`<!doctype html><html lang="en"><head><title>Faults</title></head><body><main>
      <h2>Balance</h2>
      <input id="amount" type="text">
      <div style="overflow-x:auto"><table><caption>Ledger</caption><tr><td style="white-space:nowrap">${'wide '.repeat(60)}</td></tr></table></div>
    </main></body></html>`);
    const violations = await auditAccessibility(page);
    expect(violations.map((violation) => violation.rule).sort()).toEqual(['label', 'page-has-heading-one', 'scrollable-region-focusable']);
    expect(violations.find((violation) => violation.rule === 'label')?.nodes.map((node) => node.target)).toEqual(['#amount']);
    await context.close();
  });

  it('finds nothing once the same page is fixed', async () => {
    // axe needs a page of a context (browser.newPage's own context is refused).
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    await page.setContent(`<!doctype html><html lang="en"><head><title>Fixed</title></head><body><main>
      <h1>Balance</h1>
      <label for="amount">Amount</label><input id="amount" type="text">
      <div style="overflow-x:auto" role="region" aria-labelledby="ledger" tabindex="0"><table><caption id="ledger">Ledger</caption><tr><td style="white-space:nowrap">${'wide '.repeat(60)}</td></tr></table></div>
    </main></body></html>`);
    expect(await auditAccessibility(page)).toEqual([]);
    await context.close();
  });
});

/**
 * The portal of a customer with two balances, audited as every screen is: each balance's
 * auto-recharge form, recent activity and Buy buttons are named for their balance, so no two
 * landmarks or controls share a name (landmark-unique), at a desktop's width and a phone's.
 */
describe('a portal with two balances', () => {
  const adminKey = `browser-admin-${randomUUID()}`;
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_a11y_portal', roles: 'projector,api', adminKey });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('passes the audit with both balances and their auto-recharge forms open', async () => {
    const customerId = `portal-two-${randomUUID()}`;
    const bundles = [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }];
    for (const name of ['Render credits', 'Storage credits']) {
      const product = await stack.api<{ id: string }>('POST', '/credit-products', { name, lowBalanceThreshold: '5', bundles });
      await stack.api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    }
    const { url } = await stack.api<{ url: string }>('POST', `/customers/${customerId}/portal-sessions`);
    const context = await stack.browser.newContext({ viewport: DESKTOP_VIEWPORT });
    try {
      const page = await context.newPage();
      await page.goto(url.replace(/^http:\/\/[^/]+/, stack.base));
      for (const name of ['Render credits', 'Storage credits']) {
        const card = page.getByRole('region', { name, exact: true });
        const summary = card.locator('summary').filter({ hasText: 'Auto-recharge' });
        await untilText(summary, (text) => text === 'Auto-recharge: off', `${name}: auto-recharge read`);
        await summary.click();
        await card.getByRole('button', { name: 'Save auto-recharge' }).waitFor();
      }
      await expectAccessible(page, 'the portal with two balances');
      // The same bundle on both: each Buy says which balance it buys for (sorted: the cards come in the order of their random ids).
      expect((await page.getByRole('button', { name: /^Buy / }).evaluateAll((buttons) => buttons.map((button) => button.getAttribute('aria-label') ?? ''))).sort()).toEqual([
        'Buy 100 credits for 9.90 EUR of Render credits',
        'Buy 100 credits for 9.90 EUR of Storage credits',
      ]);
      await page.setViewportSize(PHONE_VIEWPORT);
      // On a phone the recent activity scrolls in a region named by its caption.
      await waitFor(async () => (await page.getByRole('region', { name: /Recent activity/ }).count()) === 2, { description: 'both recent activity tables scrolling', timeoutMs: 10_000 });
      await expectAccessible(page, 'the portal with two balances on a phone');
    } finally {
      await context.close();
    }
  });
});
