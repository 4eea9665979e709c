import { randomUUID } from 'node:crypto';
import { waitFor } from '@tally/test-support';
import { expectAccessible, PHONE_VIEWPORT, startConsoleStack, untilText, type ConsoleStack } from './startConsoleStack';

jest.setTimeout(180_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;

/**
 * A purchase on the portal, in Chromium against the real main job, when the operator changes the
 * bundle while the customer looks at it: nothing is bought at terms the customer was not shown,
 * the new terms are shown, and buying again buys at them, as the ledger records it.
 */
describe('a portal purchase whose bundle changed', () => {
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_portal_buy', roles: 'projector,api', adminKey: ADMIN_KEY });
  });

  afterAll(async () => {
    await stack?.close();
  });

  const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${stack.base}/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    expect(response.ok).toBe(true);
    return (await response.json()) as T;
  };

  /**
   * The page keeps the purchase options it read last, once `keep` is called, until a request to a
   * path ending in `sentTo` goes out, as a page read a moment before the operator's change does
   * whatever its refresh interval.
   */
  async function keepPurchaseOptions(page: import('playwright-core').Page, sentTo: string): Promise<() => void> {
    let kept: string | undefined;
    let keeping = false;
    await page.route(
      (address) => address.pathname.endsWith('/purchase-options'),
      async (route) => {
        if (keeping && kept !== undefined) return route.fulfill({ status: 200, contentType: 'application/json', body: kept });
        try {
          const response = await route.fetch();
          const body = await response.text();
          kept = body;
          return await route.fulfill({ response, body });
        } catch (error) {
          // A read the page gave up on meanwhile (its next poll, a re-render) has no response to
          // keep: Playwright disposes it. The page reads again; only an answer it saw is kept.
          if (!/disposed|closed|aborted/i.test(String(error))) throw error;
          return route.abort().catch(() => undefined);
        }
      },
    );
    await page.route(
      (address) => address.pathname.endsWith(sentTo),
      async (route) => {
        keeping = false;
        await route.continue();
      },
    );
    return () => {
      keeping = true;
    };
  }

  /** Buys a bundle as the customer does: its Buy, then the Buy of the dialog it opens. */
  async function buyOnPortal(card: import('playwright-core').Locator, terms: string): Promise<void> {
    await card.getByRole('button', { name: new RegExp(`^Buy ${terms.replace(/[.]/g, '\\.')} of `) }).click();
    await card.page().getByRole('dialog', { name: `Buy ${terms}` }).getByRole('button', { name: 'Buy', exact: true }).click();
  }

  type Entry = { type: string; purchase: { unitPrice: string } | null };
  type Refused = { card: import('playwright-core').Locator; entries: () => Promise<Entry[]>; repriceTo: (amount: string) => Promise<void> };

  /**
   * Opens the portal on a new balance, reprices its bundle from 9.90 to 19.90 EUR while the page
   * still shows 9.90, and buys at 9.90: the purchase is refused and the new terms are shown.
   */
  async function afterARefusedPurchase(then: (refused: Refused) => Promise<void>): Promise<void> {
    const customerId = `portal-buyer-${randomUUID()}`;
    const bundle = (amount: string) => ({ id: 'pack', credits: '100', price: { amount, currency: 'EUR' } });
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Portal credits', bundles: [bundle('9.90')] });
    const { id: balanceId } = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '0' });
    const { url } = await api<{ url: string }>('POST', `/customers/${customerId}/portal-sessions`);

    const context = await stack.browser.newContext({ viewport: PHONE_VIEWPORT });
    try {
      const page = await context.newPage();
      const keep = await keepPurchaseOptions(page, '/purchases');
      await page.goto(url.replace(/^http:\/\/[^/]+/, stack.base));
      const card = page.getByRole('region', { name: 'Portal credits', exact: true });
      await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR' }).waitFor({ timeout: 30_000 });
      keep();
      const repriceTo = async (amount: string) => void (await api('PATCH', `/credit-products/${product.id}`, { bundles: [bundle(amount)] }));
      await repriceTo('19.90');

      await buyOnPortal(card, '100 credits for 9.90 EUR');
      await untilText(
        card.getByRole('alert').filter({ hasText: 'changed' }),
        (text) => text === 'The 100 credits for 9.90 EUR bundle changed before your purchase, so nothing was bought: it is now 100 credits for 19.90 EUR. Buy it again to accept.',
        'the new terms shown',
      );
      const entries = async () => (await api<{ items: Entry[] }>('GET', `/credit-balances/${balanceId}/ledger`)).items;
      expect((await entries()).map(({ type }) => type)).toEqual(['CreditBalanceOpened']);
      await expectAccessible(page, 'the portal with a changed bundle');
      await then({ card, entries, repriceTo });
    } finally {
      await context.close();
    }
  }

  it('buys nothing at a price the customer was not shown, shows the new one, and buys at it when asked again', async () => {
    await afterARefusedPurchase(async ({ card, entries }) => {
      await buyOnPortal(card, '100 credits for 19.90 EUR');
      // Said from what the ledger recorded.
      await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 100 credits for 19.90 EUR. Your balance is now 100.', 'the purchase');
      expect(await card.getByRole('alert').filter({ hasText: 'changed' }).count()).toBe(0);
      expect((await entries()).map(({ type, purchase }) => [type, purchase?.unitPrice ?? null])).toEqual([
        ['CreditToppedUp', '19.90'],
        ['CreditBalanceOpened', null],
      ]);
    });
  });

  it('shows the new terms in the auto-recharge form after a refusal for changed terms, and saves at them when saved again', async () => {
    const customerId = `portal-recharger-${randomUUID()}`;
    const bundle = (amount: string) => ({ id: 'pack', credits: '100', price: { amount, currency: 'EUR' } });
    const product = await api<{ id: string }>('POST', '/credit-products', { name: 'Recharged credits', lowBalanceThreshold: '5', bundles: [bundle('9.90')] });
    const { id: balanceId } = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    const { url } = await api<{ url: string }>('POST', `/customers/${customerId}/portal-sessions`);

    const context = await stack.browser.newContext({ viewport: PHONE_VIEWPORT });
    try {
      const page = await context.newPage();
      const keep = await keepPurchaseOptions(page, '/auto-recharge');
      await page.goto(url.replace(/^http:\/\/[^/]+/, stack.base));
      const card = page.getByRole('region', { name: 'Recharged credits', exact: true });
      const summary = card.locator('summary').filter({ hasText: 'Auto-recharge' });
      await untilText(summary, (text) => text === 'Auto-recharge: off', 'auto-recharge off');
      keep();
      await summary.click();
      const form = card.getByRole('form', { name: 'Auto-recharge' });
      await untilText(form.getByLabel('Bundle').locator('option:checked'), (text) => text === '100 credits for 9.90 EUR', 'the bundle at its first terms');
      await api('PATCH', `/credit-products/${product.id}`, { bundles: [bundle('19.90')] });

      const save = form.getByRole('button', { name: 'Save auto-recharge' });
      await save.click();
      await untilText(
        card.getByRole('alert').filter({ hasText: 'Not saved' }),
        (text) => text === 'Not saved: the 100 credits for 9.90 EUR bundle changed to 100 credits for 19.90 EUR. Saving again agrees to 100 credits for 19.90 EUR.',
        'the changed terms said',
      );
      await untilText(form.getByLabel('Bundle').locator('option:checked'), (text) => text === '100 credits for 19.90 EUR', 'the bundle at its new terms');
      await expectAccessible(page, 'the portal auto-recharge refused for changed terms');

      await save.click();
      await untilText(summary, (text) => text === 'Auto-recharge: 1 × 100 credits for 19.90 EUR below the warning limit', 'saved at the new terms');
      expect((await api<{ terms: unknown }>('GET', `/credit-balances/${balanceId}/auto-recharge`)).terms).toEqual({ credits: '100', price: { amount: '19.90', currency: 'EUR' } });
    } finally {
      await context.close();
    }
  });

  it('says the terms are back when the operator puts them back spelled otherwise ("9.9" is "9.90")', async () => {
    await afterARefusedPurchase(async ({ card, repriceTo }) => {
      await repriceTo('9.9');
      await untilText(
        card.getByRole('alert').filter({ hasText: 'changed' }),
        (text) => text === 'The 100 credits for 9.90 EUR bundle changed before your purchase, so nothing was bought. Its terms are back as they were: buy it again if you still want it.',
        'the terms back, by value',
      );
    });
  });

  it('buys at the first terms when the operator puts them back after the refusal', async () => {
    await afterARefusedPurchase(async ({ card, entries, repriceTo }) => {
      // The refused request's key and body stay refused for good (the API fences them), so the
      // page must buy under a new key, with the same body as the one refused.
      await repriceTo('9.90');
      await untilText(
        card.getByRole('alert').filter({ hasText: 'changed' }),
        (text) => text === 'The 100 credits for 9.90 EUR bundle changed before your purchase, so nothing was bought. Its terms are back as they were: buy it again if you still want it.',
        'the terms back',
      );
      await buyOnPortal(card, '100 credits for 9.90 EUR');
      await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 100 credits for 9.90 EUR. Your balance is now 100.', 'the purchase');
      expect((await entries()).map(({ type, purchase }) => [type, purchase?.unitPrice ?? null])).toEqual([
        ['CreditToppedUp', '9.90'],
        ['CreditBalanceOpened', null],
      ]);
    });
  });

  /** A new customer with one balance of a product selling `bundles`, and a portal link for it, opened on a phone. */
  async function openPortal(
    name: string,
    bundles: ReadonlyArray<{ id: string; credits: string; price: { amount: string; currency: string } }>,
    then: (portal: { page: import('playwright-core').Page; card: import('playwright-core').Locator; balanceId: string; customerId: string }) => Promise<void>,
    before?: (page: import('playwright-core').Page) => Promise<unknown>,
    lowBalanceThreshold: string | null = '5',
  ): Promise<void> {
    const customerId = `portal-${randomUUID()}`;
    const product = await api<{ id: string }>('POST', '/credit-products', { name, lowBalanceThreshold, bundles });
    const { id: balanceId } = await api<{ id: string }>('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '0' });
    const { url } = await api<{ url: string }>('POST', `/customers/${customerId}/portal-sessions`);
    const context = await stack.browser.newContext({ viewport: PHONE_VIEWPORT });
    try {
      const page = await context.newPage();
      await before?.(page);
      await page.goto(url.replace(/^http:\/\/[^/]+/, stack.base));
      await then({ page, card: page.getByRole('region', { name, exact: true }), balanceId, customerId });
    } finally {
      await context.close();
    }
  }

  /**
   * Counts, in the page, the purchases it sends and those answered: fetch is called in the click's
   * own handler, so once the click is dispatched and a frame has passed, `sent` counts what it sent.
   */
  const countPurchases = (page: import('playwright-core').Page) =>
    page.addInitScript(`(() => {
      const send = window.fetch;
      window.purchases = { sent: 0, answered: 0 };
      window.fetch = function (target, init) {
        const purchase = init?.method === 'POST' && String(target).endsWith('/purchases');
        if (purchase) window.purchases.sent += 1;
        const answer = send.apply(this, arguments);
        if (purchase) answer.finally(() => { window.purchases.answered += 1; }).catch(() => undefined);
        return answer;
      };
    })()`);

  it('buys once when Buy is clicked twice, the second click landing after the first answer', async () => {
    await openPortal(
      'Clicked credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card, balanceId }) => {
        // Buy asks first, naming the balance and the terms; the purchase is made by the dialog's Buy.
        await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Clicked credits' }).click();
        const confirm = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' }).getByRole('button', { name: 'Buy', exact: true });
        await confirm.waitFor();
        const box = (await confirm.boundingBox())!;
        const [x, y] = [box.x + box.width / 2, box.y + box.height / 2];
        // A double click whose second click comes once the first's answer is shown: both at the same spot.
        await page.mouse.click(x, y);
        await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 100 credits for 9.90 EUR. Your balance is now 100.', 'the first answer');
        await page.mouse.click(x, y);
        expect(await purchasesMade(page, balanceId)).toEqual({ sent: 1, bought: 1 });
        expect(await card.getByTestId('balance-amount').innerText()).toBe('100');
      },
      countPurchases,
      // No warning limit: nothing on the card moves when the answer comes, so the second click lands where the first did.
      null,
    );
  });

  /** Waits two frames in the page: whatever an event or an answer already in the page set off is rendered by then. */
  const afterTwoFrames = (page: import('playwright-core').Page) => page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');

  /** Once every purchase the page sent is answered: how many it sent, and how many the ledger has. */
  async function purchasesMade(page: import('playwright-core').Page, balanceId: string): Promise<{ sent: number; bought: number }> {
    await afterTwoFrames(page);
    const purchases = await waitFor(
      async () => {
        const counted = await page.evaluate<{ sent: number; answered: number }>('window.purchases');
        return counted.sent === counted.answered ? counted : undefined;
      },
      { description: 'every purchase sent answered', timeoutMs: 30_000 },
    );
    const { items } = await api<{ items: Array<{ source: string | null }> }>('GET', `/credit-balances/${balanceId}/ledger`);
    return { sent: purchases.sent, bought: items.filter(({ source }) => source === 'purchase').length };
  }

  it('buys once when the card\'s Buy and then the dialog\'s Buy are double-clicked', async () => {
    await openPortal(
      'Double-clicked credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card, balanceId }) => {
        await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Double-clicked credits' }).dblclick();
        const dialog = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' });
        await dialog.getByRole('button', { name: 'Buy', exact: true }).dblclick();
        await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 100 credits for 9.90 EUR. Your balance is now 100.', 'the purchase');
        expect(await purchasesMade(page, balanceId)).toEqual({ sent: 1, bought: 1 });
      },
      countPurchases,
    );
  });

  it('buys nothing when Enter is held on the card\'s Buy: the dialog opens on Cancel', async () => {
    await openPortal(
      'Held credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card, balanceId }) => {
        const buy = card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Held credits' });
        await buy.focus();
        // A held key: the first keydown, then repeats (one a frame, as a keyboard's come), then its keyup.
        for (let repeat = 0; repeat < 40; repeat += 1) {
          await page.keyboard.down('Enter');
          await afterTwoFrames(page);
        }
        await page.keyboard.up('Enter');
        expect(await purchasesMade(page, balanceId)).toEqual({ sent: 0, bought: 0 });
        // Opened by keyboard, the dialog's focus is on its Cancel.
        await page.keyboard.press('Escape');
        await buy.focus();
        await page.keyboard.press('Enter');
        const dialog = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' });
        await dialog.waitFor();
        await waitFor(async () => ((await page.evaluate<string | null>('document.activeElement?.textContent ?? null')) === 'Cancel' ? true : undefined), {
          description: 'focus on the dialog\'s Cancel',
          timeoutMs: 10_000,
        });
      },
      countPurchases,
    );
  });

  it('keeps the dialog open, saying so, while its purchase is in flight: Cancel and Escape wait for the answer', async () => {
    let release = () => {};
    const answered = new Promise<void>((resolve) => (release = resolve));
    await openPortal(
      'Awaited credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card }) => {
        await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Awaited credits' }).click();
        const dialog = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' });
        await dialog.getByRole('button', { name: 'Buy', exact: true }).click();
        await untilText(dialog.getByRole('status'), (text) => text === 'Buying…', 'the purchase in flight said');
        expect(await dialog.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true);
        await page.keyboard.press('Escape');
        await page.keyboard.press('Escape');
        await afterTwoFrames(page);
        expect(await dialog.isVisible()).toBe(true);
        release();
        await untilText(card.getByRole('status').filter({ hasText: 'Bought' }), (text) => text === 'Bought 100 credits for 9.90 EUR. Your balance is now 100.', 'the purchase');
        await dialog.waitFor({ state: 'hidden' });
      },
      (page) =>
        page.route(
          (address) => address.pathname.endsWith('/purchases'),
          async (route) => {
            await answered;
            await route.continue();
          },
        ),
    );
  });

  it('shows, while a failed purchase waits to be sent again, the terms it is sent again at', async () => {
    let failed = false;
    await openPortal(
      'Retried credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card, balanceId }) => {
        await buyOnPortal(card, '100 credits for 9.90 EUR');
        const first = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' });
        await untilText(first.getByRole('alert'), (text) => text === 'The service is busy.', 'the failure said in the dialog');
        await first.getByRole('button', { name: 'Cancel' }).click();
        const product = (await api<{ productId: string }>('GET', `/credit-balances/${balanceId}`)).productId;
        await api('PATCH', `/credit-products/${product}`, { bundles: [{ id: 'pack', credits: '100', price: { amount: '19.90', currency: 'EUR' } }] });
        const repriced = card.getByRole('button', { name: 'Buy 100 credits for 19.90 EUR of Retried credits' });
        await repriced.waitFor({ timeout: 30_000 });
        // The retry goes under the first try's key with the terms it expected: the dialog says those.
        await repriced.click();
        const retry = page.getByRole('dialog', { name: 'Buy 100 credits for 9.90 EUR' });
        await untilText(retry, (text) => text.includes('Your purchase of 100 credits for 9.90 EUR was not answered.'), 'the retry at the first terms');
        await retry.getByRole('button', { name: 'Buy', exact: true }).click();
        await untilText(card.getByRole('alert').filter({ hasText: 'changed' }), (text) => text.startsWith('The 100 credits for 9.90 EUR bundle changed before your purchase'), 'refused at the first terms');
        expect((await api<{ items: Array<{ source: string | null }> }>('GET', `/credit-balances/${balanceId}/ledger`)).items.filter(({ source }) => source === 'purchase')).toEqual([]);
      },
      (page) =>
        page.route(
          (address) => address.pathname.endsWith('/purchases'),
          async (route) => {
            if (failed) return route.continue();
            failed = true;
            return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'busy', message: 'The service is busy.' }) });
          },
        ),
    );
  });

  it('keeps the purchase options a newer read brought when an older read is answered after it', async () => {
    let holding = false;
    let held: { request: import('playwright-core').Request; release: () => void } | undefined;
    const bundles = (amount: string) => [
      { id: 'pack', credits: '100', price: { amount, currency: 'EUR' } },
      { id: 'small', credits: '10', price: { amount: '1.00', currency: 'EUR' } },
    ];
    await openPortal(
      'Reread credits',
      bundles('9.90'),
      async ({ page, card, balanceId }) => {
        await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Reread credits' }).waitFor({ timeout: 30_000 });
        // The next poll's read is answered with what it read, but only once released.
        holding = true;
        const stale = await waitFor(async () => held, { description: 'a purchase options read held', timeoutMs: 30_000 });
        const product = (await api<{ productId: string }>('GET', `/credit-balances/${balanceId}`)).productId;
        await api('PATCH', `/credit-products/${product}`, { bundles: bundles('19.90') });
        // A purchase reads the options again, past the held read.
        await buyOnPortal(card, '10 credits for 1.00 EUR');
        const repriced = card.getByRole('button', { name: 'Buy 100 credits for 19.90 EUR of Reread credits' });
        await repriced.waitFor({ timeout: 30_000 });
        const finished = page.waitForEvent('requestfinished', { predicate: (request) => request === stale.request, timeout: 30_000 });
        stale.release();
        await finished;
        await afterTwoFrames(page);
        expect(await card.getByRole('button', { name: /^Buy 100 credits for / }).getAttribute('aria-label')).toBe('Buy 100 credits for 19.90 EUR of Reread credits');
      },
      (page) =>
        page.route(
          (address) => address.pathname.endsWith('/purchase-options'),
          async (route) => {
            if (!holding || held !== undefined) return route.continue();
            const response = await route.fetch();
            const body = await response.text();
            await new Promise<void>((resolve) => (held = { request: route.request(), release: resolve }));
            return route.fulfill({ response, body });
          },
        ),
    );
  });

  it('shows no purchase options until they are read, and a failed read once, not in every balance', async () => {
    let release = () => {};
    const answered = new Promise<void>((resolve) => (release = resolve));
    let failing = false;
    await openPortal(
      'Unoffered credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card, customerId }) => {
        await untilText(card.getByTestId('balance-amount'), (text) => text === '0', 'the balance shown');
        // A second balance: its card shows up at the balances' next read, the options still unread.
        const other = await api<{ id: string }>('POST', '/credit-products', { name: 'Other unoffered credits', bundles: [{ id: 'pack', credits: '1', price: { amount: '1.00', currency: 'EUR' } }] });
        await api('POST', `/customers/${customerId}/credit-balances`, { productId: other.id, startingBalance: '0' });
        const otherCard = page.getByRole('region', { name: 'Other unoffered credits', exact: true });
        await untilText(otherCard.getByTestId('balance-amount'), (text) => text === '0', 'the second balance shown');
        // Not read yet: nothing said of them, least of all that there is nothing to buy.
        expect(await page.locator('main').innerText()).not.toContain('Nothing to buy');
        expect(await page.getByRole('button', { name: /^Buy / }).count()).toBe(0);
        release();
        await card.getByRole('button', { name: 'Buy 100 credits for 9.90 EUR of Unoffered credits' }).waitFor({ timeout: 30_000 });
        await otherCard.getByRole('button', { name: 'Buy 1 credits for 1.00 EUR of Other unoffered credits' }).waitFor({ timeout: 30_000 });

        // The options' reads failing from now on: said once, the bundles read before still shown.
        failing = true;
        const failure = page.getByRole('alert').filter({ hasText: 'Purchase options' });
        await untilText(failure, (text) => text === 'Purchase options could not be read: Purchase options are unavailable.', 'the failed read said');
        expect(await page.getByRole('alert').allInnerTexts()).toEqual(['Purchase options could not be read: Purchase options are unavailable.']);
        expect(await page.getByRole('button', { name: /^Buy / }).count()).toBe(2);
        await expectAccessible(page, 'the portal with its purchase options unread');
      },
      (page) =>
        page.route(
          (address) => address.pathname.endsWith('/purchase-options'),
          async (route) => {
            await answered;
            if (failing) return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'unavailable', message: 'Purchase options are unavailable.' }) });
            return route.continue();
          },
        ),
    );
  });

  it('shows the balances when the subscriptions cannot be read, and says so where the subscriptions go', async () => {
    await openPortal(
      'Unsubscribed credits',
      [{ id: 'pack', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
      async ({ page, card }) => {
        await untilText(card.getByTestId('balance-amount'), (text) => text === '0', 'the balance shown');
        await card.getByRole('button', { name: /^Buy 100 credits for 9\.90 EUR/ }).waitFor();
        await untilText(page.getByRole('region', { name: 'Your subscriptions' }).getByRole('alert'), (text) => text === 'Subscriptions are unavailable.', 'the subscriptions\' failure said');
        await expectAccessible(page, 'the portal with its subscriptions unread');
      },
      (page) =>
        page.route(
          (address) => address.pathname.endsWith('/subscriptions'),
          (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'subscriptions_unavailable', message: 'Subscriptions are unavailable.' }) }),
        ),
    );
  });

  it('describes a bundle by its terms and its price formatted, never by the operator\'s id', async () => {
    const bundles = [{ id: 'pack', credits: '100', price: { amount: '1234.50', currency: 'EUR' } }];
    await openPortal('Priced credits', bundles, async ({ page, card, balanceId }) => {
      await card.getByRole('button', { name: /^Buy 100 credits for 1,234\.50 EUR/ }).waitFor();
      // Bought by the provider's key: the portal shows it as the provider's, in the customer's words.
      const bought = await fetch(`${stack.base}/v1/credit-balances/${balanceId}/purchases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
        body: JSON.stringify({ bundleId: 'pack', quantity: 2 }),
      });
      expect(bought.status).toBe(201);
      const activity = card.getByRole('table', { name: /^Recent activity/ });
      await untilText(activity, (text) => text.includes('+200'), 'the purchase in the recent activity');
      const reasons = await activity.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.children[4]?.textContent ?? ''));
      expect(reasons[0]).toBe('2 bundles: 200 credits for 2,469.00 EUR');

      const summary = card.locator('summary').filter({ hasText: 'Auto-recharge' });
      await untilText(summary, (text) => text === 'Auto-recharge: off', 'auto-recharge off');
      await summary.click();
      const form = card.getByRole('form', { name: 'Auto-recharge' });
      await untilText(form.getByLabel('Bundle').locator('option:checked'), (text) => text === '100 credits for 1,234.50 EUR', 'the bundle by its terms');
      await form.getByRole('button', { name: 'Save auto-recharge' }).click();
      await untilText(summary, (text) => text === 'Auto-recharge: 1 × 100 credits for 1,234.50 EUR below the warning limit', 'the setting by its terms');
      expect(await card.innerText()).not.toMatch(/\bpack\b/);
      await expectAccessible(page, 'the portal with a purchase and auto-recharge set');
    });
  });
});
