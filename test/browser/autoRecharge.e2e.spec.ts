import { randomUUID } from 'node:crypto';
import { openCustomer, photograph, startConsoleStack, untilText, type ConsoleStack } from './startConsoleStack';

jest.setTimeout(180_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;

/**
 * Auto-recharge from the console, in Chromium against the real main job with the scheduler role:
 * set by keyboard on a balance's card, then usage metered by the consumer takes the balance
 * below its warning limit and the scheduler buys the bundle, which shows on the card.
 */
describe('auto-recharge from the console', () => {
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_recharge', roles: 'consumer,projector,api,scheduler', adminKey: ADMIN_KEY, env: { TALLY_CATALOG_REFRESH_MS: '200' } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  const api = (method: string, url: string, body?: unknown) =>
    fetch(`${stack.base}/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('buys the chosen bundle when metered usage takes the balance below its warning limit', async () => {
    const customerId = `recharged-${randomUUID()}`;
    const product = (await (
      await api('POST', '/credit-products', {
        name: 'Render credits',
        lowBalanceThreshold: '5',
        consumption: [{ event: 'render', credits: '3' }],
        bundles: [
          { id: 'refill', credits: '50', price: { amount: '4.90', currency: 'EUR' } },
          { id: 'big', credits: '500', price: { amount: '39', currency: 'EUR' } },
        ],
      })
    ).json()) as { id: string };
    expect((await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' })).status).toBe(201);

    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Render credits/ });
      const amount = card.getByTestId('balance-amount');
      await untilText(amount, (text) => text === '10', 'the opened balance');

      // Set by keyboard: the disclosure, the bundle, the quantity, Enter.
      const summary = card.getByText(/^Auto-recharge: off$/);
      await summary.waitFor({ timeout: 30_000 });
      await summary.focus();
      await page.keyboard.press('Enter');
      const form = card.getByRole('form', { name: 'Auto-recharge' });
      await form.getByLabel('Bundle').selectOption('refill');
      // A quantity is plain digits: "1e3" is refused at its field, never sent as 1,000 bundles.
      await form.getByLabel('Quantity').fill('1e3');
      await form.getByLabel('Quantity').press('Enter');
      await untilText(form.getByRole('alert'), (text) => text === 'must be a whole number of bundles, 1 or more', 'the quantity refused');
      expect(await form.getByLabel('Quantity').getAttribute('aria-invalid')).toBe('true');
      await form.getByLabel('Quantity').fill('2');
      // A monthly limit that is not a number is refused at its field, never sent as "no limit".
      const most = form.getByLabel('Most a month');
      await most.fill('five');
      await most.press('Enter');
      await untilText(form.getByRole('alert'), (text) => text === 'must be a whole number of purchases, or empty for no limit', 'the monthly limit refused');
      expect(await most.getAttribute('aria-invalid')).toBe('true');
      await most.fill('5');
      await most.press('Enter');
      await untilText(card.getByRole('status').filter({ hasText: 'Auto-recharge' }), (text) => text === 'Auto-recharge saved.', 'the setting saved');
      await untilText(
        card.locator('summary').filter({ hasText: 'Auto-recharge' }),
        (text) => text === 'Auto-recharge: 2 × refill (50 credits for 4.90 EUR each) below the warning limit, at most 5 a month',
        'the summary',
      );

      // 10 − 3 − 3 = 4, below 5: warned, and 2 × 50 bought.
      const events = ['r-1', 'r-2'].map((id) => ({ id: `${customerId}-${id}`, customerId, event: 'render', timestamp: new Date().toISOString() }));
      expect((await api('POST', '/usage-events', { events })).status).toBe(202);
      await untilText(amount, (text) => text === '104', 'the balance recharged');
      const newest = card.getByRole('table', { name: 'Newest ledger entries' });
      await untilText(newest, (text) => text.includes('bundle refill × 2, 9.80 EUR; auto-recharge: below the warning limit') && text.includes('+100'), 'the purchase in the ledger');
      // The setting, read again as the balance moved, says when it last bought.
      await untilText(
        card.locator('details').filter({ has: page.getByText(/^Auto-recharge:/) }),
        (text) => /Last bought \d/.test(text) && text.includes('Bought 1 time this month of at most 5.'),
        'when it last bought, and how often this month',
      );
      await photograph(page, 'console-auto-recharge.png', { element: card });

      // Turned off: the summary says so, and the API agrees.
      await card.getByRole('button', { name: 'Turn auto-recharge off' }).click();
      await untilText(card.locator('summary').filter({ hasText: 'Auto-recharge' }), (text) => text === 'Auto-recharge: off', 'turned off');
      const balances = (await (await api('GET', `/customers/${customerId}/credit-balances`)).json()) as { items: Array<{ id: string }> };
      expect((await api('GET', `/credit-balances/${balances.items[0]!.id}/auto-recharge`)).status).toBe(404);
    } finally {
      await context.close();
    }
  });

  it('says when the bundle is no longer at the terms it was set at, until it is saved again', async () => {
    const customerId = `repriced-${randomUUID()}`;
    const refill = (amount: string) => ({ id: 'refill', credits: '50', price: { amount, currency: 'EUR' } });
    const product = (await (await api('POST', '/credit-products', { name: 'Repriced credits', lowBalanceThreshold: '5', bundles: [refill('4.90')] })).json()) as { id: string };
    const { id: balanceId } = (await (await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' })).json()) as { id: string };
    expect((await api('PUT', `/credit-balances/${balanceId}/auto-recharge`, { bundleId: 'refill', quantity: 1 })).status).toBe(200);
    // The same price in another spelling is no change: the API compares by value, and so does the page.
    expect((await api('PATCH', `/credit-products/${product.id}`, { bundles: [refill('4.9')] })).status).toBe(200);

    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Repriced credits/ });
      const summary = card.locator('summary').filter({ hasText: 'Auto-recharge' });
      await untilText(summary, (text) => text === 'Auto-recharge: 1 × refill (50 credits for 4.90 EUR each) below the warning limit', 'the summary at the terms set');
      await summary.click();
      const changed = card.getByText(/^The bundle is now/);
      expect(await changed.count()).toBe(0);

      expect((await api('PATCH', `/credit-products/${product.id}`, { bundles: [refill('5.90')] })).status).toBe(200);
      await page.reload();
      await openCustomer(page, customerId);
      await card.locator('summary').filter({ hasText: 'Auto-recharge' }).click();
      await untilText(
        card.getByText(/^The bundle is now/),
        (text) => text === 'The bundle is now 50 credits for 5.90 EUR, not 50 credits for 4.90 EUR as when this was set: it buys nothing until it is saved again.',
        'the changed terms said',
      );

      // Repriced again while the page shows 5.90: Save sends the terms shown, and is refused.
      expect((await api('PATCH', `/credit-products/${product.id}`, { bundles: [refill('6.90')] })).status).toBe(200);
      const form = card.getByRole('form', { name: 'Auto-recharge' });
      await form.getByLabel('Quantity').press('Enter');
      await untilText(
        card.getByRole('alert'),
        (text) => text === 'Not saved: the refill bundle changed to 50 credits for 6.90 EUR (it was 50 credits for 5.90 EUR). Saving again agrees to 50 credits for 6.90 EUR.',
        'the save refused at the terms shown',
      );
      expect(((await (await api('GET', `/credit-balances/${balanceId}/auto-recharge`)).json()) as { terms: unknown }).terms).toEqual({ credits: '50', price: { amount: '4.90', currency: 'EUR' } });

      // Shown the new terms (read again, no reload) and saved again: it accepts them, and the notice goes.
      await form.getByLabel('Quantity').press('Enter');
      await untilText(card.getByRole('status').filter({ hasText: 'Auto-recharge' }), (text) => text === 'Auto-recharge saved.', 'the setting saved');
      await untilText(card.locator('summary').filter({ hasText: 'Auto-recharge' }), (text) => text.includes('(50 credits for 6.90 EUR each)'), 'the summary at the new terms');
      expect(await card.getByText(/^The bundle is now/).count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it('after a refusal for changed terms, shows the bundle as it is now and saves at those terms when saved again', async () => {
    const customerId = `refused-${randomUUID()}`;
    const refill = (amount: string) => ({ id: 'refill', credits: '50', price: { amount, currency: 'EUR' } });
    const product = (await (await api('POST', '/credit-products', { name: 'Changed credits', lowBalanceThreshold: '5', bundles: [refill('4.90')] })).json()) as { id: string };
    const { id: balanceId } = (await (await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' })).json()) as { id: string };

    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Changed credits/ });
      const summary = card.locator('summary').filter({ hasText: 'Auto-recharge' });
      await untilText(summary, (text) => text === 'Auto-recharge: off', 'the setting read');
      await summary.click();
      const form = card.getByRole('form', { name: 'Auto-recharge' });
      const chosen = form.getByLabel('Bundle').locator('option:checked');
      await untilText(chosen, (text) => text === 'refill: 50 credits for 4.90 EUR', 'the bundle at its first terms');

      // Repriced by the operator while the form shows 4.90: Save is refused (nothing set) ...
      expect((await api('PATCH', `/credit-products/${product.id}`, { bundles: [refill('5.90')] })).status).toBe(200);
      await form.getByLabel('Quantity').press('Enter');
      await untilText(card.getByRole('alert'), (text) => text.includes('5.90 EUR'), 'the save refused at the terms shown');
      expect((await api('GET', `/credit-balances/${balanceId}/auto-recharge`)).status).toBe(404);
      // ... and the form shows the bundle's terms read again, and says that saving agrees to them.
      await untilText(chosen, (text) => text === 'refill: 50 credits for 5.90 EUR', 'the bundle at its new terms');
      await untilText(
        card.getByRole('alert'),
        (text) => text === 'Not saved: the refill bundle changed to 50 credits for 5.90 EUR (it was 50 credits for 4.90 EUR). Saving again agrees to 50 credits for 5.90 EUR.',
        'the changed terms said',
      );

      // Saved again, by keyboard: at the terms now shown, and the notice goes.
      await form.getByLabel('Quantity').press('Enter');
      await untilText(card.getByRole('status').filter({ hasText: 'Auto-recharge' }), (text) => text === 'Auto-recharge saved.', 'the setting saved');
      await untilText(summary, (text) => text === 'Auto-recharge: 1 × refill (50 credits for 5.90 EUR each) below the warning limit', 'the summary at the new terms');
      expect(await card.getByRole('alert').count()).toBe(0);
      const set = (await (await api('GET', `/credit-balances/${balanceId}/auto-recharge`)).json()) as { terms: unknown };
      expect(set.terms).toEqual({ credits: '50', price: { amount: '5.90', currency: 'EUR' } });
    } finally {
      await context.close();
    }
  });
});
