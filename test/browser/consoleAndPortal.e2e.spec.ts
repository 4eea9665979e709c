import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { freePort, waitFor, type Browser, type Locator, type Page } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, openCustomer, PHONE_VIEWPORT, photograph, startConsoleStack, untilFocused, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * The console and the portal in a real browser (Debian's Chromium through playwright-core)
 * against the real main job (consumer, projector and API) on the local stack: what an operator
 * and a customer do, by clicking and typing, from sign-in to a bought bundle.
 *
 * Screenshots of the main screens go to .tally/screenshots; with TALLY_UPDATE_SCREENSHOTS=1
 * they go to docs/screenshots, which the README shows.
 */
jest.setTimeout(240_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;
const PHONE = PHONE_VIEWPORT;

/** The file a click hands to the browser as a download: its suggested name and its CSV rows. */
async function downloadedCsv(page: Page, click: () => Promise<void>): Promise<{ name: string; rows: Record<string, string>[] }> {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), rows: parseCsv(readFileSync(file, 'utf8'), { columns: true }) as Record<string, string>[] };
}

/** A statement table's rows as label → amount, as they read. */
async function statementRows(table: Locator): Promise<Record<string, string>> {
  const rows = await table.locator('tr').evaluateAll((cells) => cells.map((row) => [row.querySelector('th')?.textContent ?? '', row.querySelector('td')?.textContent ?? '']));
  return Object.fromEntries(rows);
}

/** The month after "2026-03" as a month input writes it, and the one before. */
const monthAfter = (month: string, by: number) => new Date(Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)) - 1 + by, 1)).toISOString().slice(0, 7);

describe('the console and the portal in Chromium', () => {
  let stack: ConsoleStack;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    stack = await startConsoleStack({
      prefix: 'browser_e2e',
      roles: 'consumer,projector,api,webhooks',
      adminKey: ADMIN_KEY,
      usagePartitions: 2,
      env: {
        TALLY_CATALOG_REFRESH_MS: '200',
        // The test's receiver listens on 127.0.0.1, which Tally refuses by default.
        TALLY_WEBHOOKS_ALLOW_PRIVATE_NETWORKS: 'true',
        TALLY_WEBHOOKS_POLL_MS: '200',
      },
    });
    ({ base, browser } = stack);
  });

  afterAll(async () => {
    await stack?.close();
  });

  /** Sends `count` usage events over HTTP; answers their ids. */
  async function publishUsage(customerId: string, event: string, count: number): Promise<string[]> {
    const now = Date.now();
    const events = Array.from({ length: count }, (_, index) => ({
      id: `browser-${randomUUID()}`,
      customerId,
      event,
      timestamp: new Date(now - index).toISOString(),
    }));
    const response = await fetch(`${base}/v1/usage-events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    expect(response.status).toBe(202);
    return events.map((sent) => sent.id);
  }

  /** The API as the test's own client calls it, with the admin key. */
  const api = (method: string, url: string, body?: unknown) =>
    fetch(`${base}/v1${url}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });

  it('takes an operator from sign-in to a portal link, and a customer from that link to a bought bundle', async () => {
    const consoleContext = await browser.newContext({ viewport: DESKTOP_VIEWPORT });
    const page: Page = await consoleContext.newPage();
    // Whatever the browser complains of: a script or style the Content-Security-Policy blocked, an
    // error thrown by a page. Expected failures (a refused request) are answered, not thrown.
    const complaints: string[] = [];
    const listen = (watched: Page) => {
      watched.on('console', (message) => {
        if (message.type() === 'error' && !/the server responded with a status of (400|401|404)/.test(message.text())) complaints.push(message.text());
      });
      watched.on('pageerror', (error) => complaints.push(String(error)));
    };
    listen(page);
    const customerId = 'acme';
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });

    // Sign in with the admin key: a session cookie, the key is not kept by the page.
    await stack.signIn(page);
    // Who is signed in: the key's configured name, never the key.
    expect(await page.getByRole('banner').textContent()).toContain('Signed in as operator');
    const cookies = await consoleContext.cookies();
    const session = cookies.find((cookie) => cookie.name === 'tally_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(session?.expires).toBeGreaterThan(Date.now() / 1000);

    // A credit product; the API's validation error shows next to the field it concerns.
    await nav('Catalog').click();
    await page.getByRole('link', { name: 'New credit product' }).click();
    await page.getByLabel('Product id').fill('api-credits');
    await page.getByLabel('Name', { exact: true }).fill('API credits');
    await page.getByLabel('Warning limit').fill('100');
    await page.getByLabel('Event name').fill('api_call');
    await page.getByLabel('Credits', { exact: true }).fill('1');
    await page.getByRole('button', { name: 'Add bundle' }).click();
    await page.getByLabel('Bundle id').fill('starter');
    await page.getByLabel('Bundle credits').fill('1000');
    await page.getByLabel('Price').fill('9.90');
    await page.getByLabel('Currency').fill('eur');
    await page.getByRole('button', { name: 'Create credit product' }).click();
    const currencyError = page.locator('.field.has-error', { has: page.getByLabel('Currency') }).locator('.error');
    await untilText(currencyError, (text) => text.length > 0, 'the currency error next to its field');
    await page.getByLabel('Currency').fill('EUR');
    // A second bundle kept off the portal's purchase options.
    await page.getByRole('button', { name: 'Add bundle' }).click();
    await page.getByLabel('Bundle id').nth(1).fill('wholesale');
    await page.getByLabel('Bundle credits').nth(1).fill('100000');
    await page.getByLabel('Price').nth(1).fill('500');
    await page.getByLabel('Currency').nth(1).fill('EUR');
    await page.getByLabel('Shown as a purchase option on the portal').nth(1).uncheck();
    await page.getByRole('button', { name: 'Create credit product' }).click();
    await page.getByRole('heading', { name: 'Edit API credits' }).waitFor();
    // Each saved change is a version in the product's history, the newest first.
    for (const limit of ['50', '100']) {
      await page.getByLabel('Warning limit').fill(limit);
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    }
    await page.getByText('History', { exact: true }).click();
    const history = page.getByRole('table', { name: 'Versions of this product, newest first' });
    await untilText(history, (text) => text.split('\n').length >= 4, 'the three versions');
    const versions = await history.locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)));
    // Each made through the console's session by the key it was opened with, by its name in TALLY_API_KEYS.
    const by = 'operator';
    expect(versions.map((cells) => [cells[0], cells[2], cells[5]])).toEqual([
      ['3', by, '100'],
      ['2', by, '50'],
      ['1', by, '100'],
    ]);
    await nav('Catalog').click();
    await page.getByRole('link', { name: 'API credits' }).waitFor();
    await photograph(page, 'console-catalog.png');

    // The customer's Credits tab: Add credit balance, the warning limit defaulting to the product's.
    await openCustomer(page, customerId);
    await page.getByRole('button', { name: 'Add credit balance' }).click();
    const addDialog = page.getByRole('dialog', { name: 'Add credit balance' });
    await untilText(addDialog.getByLabel('Credit product'), (text) => text.includes('API credits'), 'the product in the dialog');
    // Chosen by name: other tests of this file add products of their own, in any order.
    await addDialog.getByLabel('Credit product').selectOption({ label: 'API credits' });
    expect(await addDialog.getByLabel('Warning limit').inputValue()).toBe('100');
    await addDialog.getByLabel('Starting balance').fill('150');
    await expectAccessible(page, 'the Add credit balance dialog');
    await addDialog.getByRole('button', { name: 'Add', exact: true }).click();
    const card = page.getByRole('region', { name: /API credits/ });
    const amount = card.getByTestId('balance-amount');
    await untilText(amount, (text) => text === '150', 'the opened balance');

    // Usage published by a backend shows in recent consumption without a reload.
    await publishUsage(customerId, 'api_call', 3);
    await untilText(amount, (text) => text === '147', 'the metered usage on the balance');
    const consumptionTable = card.getByRole('table', { name: /by event/ });
    await untilText(consumptionTable, (text) => /api_call\s+3\s+3/.test(text), 'recent consumption by event');
    await untilText(card.getByRole('table', { name: 'Newest ledger entries' }), (text) => text.includes('api_call'), 'the newest ledger entries');

    // Top up, clicked twice: one Idempotency-Key, so the balance changes once.
    await card.getByRole('button', { name: 'Top up' }).click();
    const topUp = page.getByRole('dialog', { name: /^Top up/ });
    await topUp.getByLabel('Credits').fill('50');
    await topUp.getByLabel('Reason').fill('goodwill');
    await topUp.getByRole('button', { name: 'Top up' }).dblclick();
    await untilText(amount, (text) => text === '197', 'the top-up');
    const ledger = (await (
      await fetch(`${base}/v1/customers/${customerId}/credit-balances`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    ).json()) as { items: Array<{ id: string }> };
    const balanceId = ledger.items[0]!.id;
    const entries = (await (await fetch(`${base}/v1/credit-balances/${balanceId}/ledger`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as {
      items: Array<{ reason: string | null }>;
    };
    expect(entries.items.filter((entry) => entry.reason === 'goodwill')).toHaveLength(1);

    // Retain usage below the warning limit: the below-limit state shows.
    await card.getByRole('button', { name: 'Retain usage' }).click();
    const retain = page.getByRole('dialog', { name: /^Retain usage/ });
    await retain.getByLabel('Credits').fill('100');
    await retain.getByLabel('Reason').fill('usage billed elsewhere');
    await retain.getByRole('button', { name: 'Retain usage' }).click();
    await untilText(amount, (text) => text === '97', 'the retained usage');
    await card.getByRole('status').filter({ hasText: 'Below warning limit' }).waitFor();
    await photograph(page, 'console-customer-credits.png', { fullPage: true });

    // The whole ledger as a file, oldest first: opening, starting balance, usage, top-up, retained usage.
    const consoleLedger = await downloadedCsv(page, () => card.getByRole('button', { name: 'Download ledger (CSV)' }).click());
    expect(consoleLedger.name).toBe(`ledger-${balanceId.replace(/[^A-Za-z0-9._-]/g, '_')}.csv`);
    // Who asked: the console's key, by id and name, for every change but the metered usage.
    const keyId = createHash('sha256').update(ADMIN_KEY).digest('hex').slice(0, 12);
    expect(consoleLedger.rows.map((row) => [row.type, row.credits, row.balanceAfter, row.reason, row.actorKeyId, row.actorKeyName])).toEqual([
      ['CreditBalanceOpened', '', '', '', keyId, 'operator'],
      ['CreditToppedUp', '150', '150', '', keyId, 'operator'],
      ['CreditConsumed', '1', '149', '', '', ''],
      ['CreditConsumed', '1', '148', '', '', ''],
      ['CreditConsumed', '1', '147', '', '', ''],
      ['CreditToppedUp', '50', '197', 'goodwill', keyId, 'operator'],
      ['CreditConsumed', '100', '97', 'usage billed elsewhere', keyId, 'operator'],
      ['LowBalanceWarned', '', '97', '', keyId, 'operator'],
    ]);
    const newest = card.getByRole('table', { name: 'Newest ledger entries' });
    const goodwillRow = await newest.locator('tbody tr').filter({ hasText: 'goodwill' }).evaluate((row) => [...row.children].map((cell) => cell.textContent));
    expect(goodwillRow.at(-1)).toBe('operator');

    // A portal link, opened in another profile (a fresh context: no console cookie) on a phone.
    await page.getByRole('button', { name: 'Create portal link' }).click();
    const url = await page.getByLabel('Portal link').inputValue();
    expect(url).toContain('/portal#token=');
    const portalContext = await browser.newContext({ viewport: PHONE });
    const portal = await portalContext.newPage();
    listen(portal);
    // A link whose token is not valid says so, in a page as accessible as the portal itself (a
    // page of its own: the same page would take the real link as a change of fragment only).
    const invalid = await portalContext.newPage();
    listen(invalid);
    await invalid.goto(`${base}/portal#token=not-a-token`);
    await invalid.getByRole('alert').filter({ hasText: 'This link is not valid or has expired.' }).waitFor();
    await expectAccessible(invalid, 'the portal with a link that is not valid');
    await invalid.close();
    await portal.goto(url.replace(/^http:\/\/[^/]+/, base));
    const portalCard = portal.getByRole('region', { name: 'API credits', exact: true });
    const portalAmount = portalCard.getByTestId('balance-amount');
    await untilText(portalAmount, (text) => text === '97', 'the balance on the portal');
    expect(portal.url()).not.toContain('token=');
    await portal.getByRole('heading', { name: 'Purchase options' }).waitFor();
    const buy = portalCard.getByRole('button', { name: /^Buy/ });
    expect(await buy.count()).toBe(1);
    expect(await buy.getAttribute('aria-label')).toBe('Buy 1,000 credits for 9.90 EUR of API credits');
    await photograph(portal, 'portal.png', { fullPage: true });
    await buy.click();
    // Buy asks first, naming the terms: its dialog's Buy buys.
    await portal.getByRole('dialog', { name: 'Buy 1,000 credits for 9.90 EUR' }).getByRole('button', { name: 'Buy', exact: true }).click();
    await untilText(portalAmount, (text) => text === '1,097', 'the bought bundle on the portal');
    await untilText(amount, (text) => text === '1,097', 'the bought bundle in the console');
    // The customer's own file, with the purchase in it (a portal token is a header: the button fetches with it).
    const portalLedger = await downloadedCsv(portal, () => portalCard.getByRole('button', { name: 'Download all activity (CSV)' }).click());
    expect(portalLedger.rows.at(-1)).toMatchObject({ type: 'CreditToppedUp', source: 'purchase', credits: '1000', balanceAfter: '1097', purchaseTotalPrice: '9.90', purchaseCurrency: 'EUR', actorKind: 'portal' });
    // The provider's changes show as the provider's, never by the key's id or name.
    expect(portalLedger.rows.find((row) => row.reason === 'goodwill')).toMatchObject({ actorKind: 'operator', actorKeyId: '', actorKeyName: '' });
    // The customer's statement of the month the purchase was recorded in has it among what was added.
    const purchaseMonth = portalLedger.rows.at(-1)!.recordedAt!.slice(0, 7);
    await portalCard.getByText('Monthly statement', { exact: true }).click();
    await portalCard.getByLabel('Month', { exact: true }).fill(purchaseMonth);
    const portalStatement = portalCard.getByRole('table', { name: /^Statement for / });
    await untilText(portalStatement, (text) => text.includes('Purchases'), "the purchase on the customer's statement");
    expect(await statementRows(portalStatement)).toMatchObject({ Purchases: '+1,000' });
    const activity = portalCard.getByRole('table', { name: 'Recent activity' });
    await untilText(activity, (text) => text.includes('You'), 'the purchase as the customer\'s own in the recent activity');
    const byColumn = await activity.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.lastElementChild?.textContent ?? ''));
    expect(byColumn[0]).toBe('You');
    expect(byColumn).toContain('Your provider');
    expect(byColumn.join()).not.toContain('operator');

    // Keyboard alone: Tab from the top reaches the first Buy button and Enter activates it.
    const focusedBuy = await waitFor(
      async () => {
        await portal.keyboard.press('Tab');
        // A string: this file is compiled without the DOM's types; it runs in the page.
        return portal.evaluate<boolean>("document.activeElement?.getAttribute('aria-label')?.startsWith('Buy') === true");
      },
      { description: 'keyboard focus on Buy', timeoutMs: 10_000, intervalMs: 0 },
    );
    expect(focusedBuy).toBe(true);

    // The customer turns on auto-recharge, with the one bundle the portal offers; set by no key.
    const rechargeSummary = portalCard.locator('summary').filter({ hasText: 'Auto-recharge' });
    await untilText(rechargeSummary, (text) => text === 'Auto-recharge: off', 'auto-recharge off on the portal');
    await rechargeSummary.click();
    const rechargeForm = portalCard.getByRole('form', { name: 'Auto-recharge' });
    expect(await rechargeForm.getByLabel('Bundle').locator('option').count()).toBe(1);
    await rechargeForm.getByRole('button', { name: 'Save auto-recharge' }).click();
    await untilText(rechargeSummary, (text) => text === 'Auto-recharge: 1 × 1,000 credits for 9.90 EUR below the warning limit', 'auto-recharge set on the portal');
    const portalBalanceId = (await (await fetch(`${base}/v1/customers/${customerId}/credit-balances`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as { items: Array<{ id: string }> };
    const rechargeSet = (await (await fetch(`${base}/v1/credit-balances/${portalBalanceId.items[0]!.id}/auto-recharge`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as { quantity: number; updatedBy: unknown };
    expect(rechargeSet).toMatchObject({ quantity: 1, updatedBy: null });
    await expectAccessible(portal, 'the portal with auto-recharge open');

    await portalContext.close();

    // A plan of the product, and the customer subscribed with an override of its own.
    await nav('Plans').click();
    await page.getByLabel('Plan name').fill('Monthly API');
    await page.getByRole('button', { name: 'Add credit product to plan' }).click();
    await page.getByLabel('Credit product').selectOption({ label: 'API credits' });
    await page.getByLabel('Credits per period').fill('500');
    await page.getByRole('button', { name: 'Create plan' }).click();
    await untilText(page.getByRole('table', { name: 'Plans' }), (text) => text.includes('Monthly API') && text.includes('500 api-credits per month'), 'the new plan');
    // The plan names the key of the session that created it, in the By column, and is offered.
    const planRow = page.getByRole('table', { name: 'Plans' }).locator('tbody tr', { hasText: 'Monthly API' });
    expect(await planRow.locator('td').evaluateAll((cells) => cells.slice(3).map((cell) => cell.textContent))).toEqual(['operator', 'Offered Retire']);
    await photograph(page, 'console-plans.png');
    await nav('Customers').click();
    await page.getByRole('link', { name: customerId, exact: true }).click();
    await page.getByRole('tab', { name: 'Subscriptions' }).click();
    await untilText(page.getByLabel('Plan'), (text) => text.includes('Monthly API'), 'the plan to subscribe to');
    await page.getByLabel('Credits per period for this subscription').fill('750');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    const grants = page.getByRole('table', { name: 'Grants' });
    await untilText(grants, (text) => text.includes('750') && /Granted through period[\s\S]*\b1\b/.test(text), "the subscription's first grant");
    expect(await page.getByRole('region', { name: /^Subscription / }).textContent()).toContain('subscribed by operator');

    // The customer sees the subscription on the portal: the plan, what it grants and when next, and no key.
    const portalAgain = await browser.newContext({ viewport: PHONE });
    const portalPage = await portalAgain.newPage();
    listen(portalPage);
    await portalPage.goto(url.replace(/^http:\/\/[^/]+/, base));
    const portalSubscriptions = portalPage.getByRole('table', { name: 'Subscriptions' });
    await untilText(portalSubscriptions, (text) => text.includes('Monthly API'), 'the subscription on the portal');
    expect(await portalSubscriptions.locator('thead th').allInnerTexts()).toEqual(['Plan', 'Product', 'Grants', 'Next']);
    const subscriptionRows = await portalSubscriptions.locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
    expect(subscriptionRows).toEqual([['Monthly API', 'API credits', '750 per month', expect.stringMatching(/^Next credits /)]]);
    expect(await portalPage.getByRole('region', { name: 'Your subscriptions' }).textContent()).not.toContain('operator');
    await portalAgain.close();

    // New terms from the next period, then a cancellation; each names the session's key.
    const subscriptionCard = page.getByRole('region', { name: /^Subscription / });
    await subscriptionCard.getByRole('button', { name: 'Change terms' }).click();
    const termsDialog = page.getByRole('dialog', { name: 'Change terms: Monthly API' });
    expect(await termsDialog.getByLabel('Credits per period for this subscription').inputValue()).toBe('750');
    await termsDialog.getByLabel('Credits per period for this subscription').fill('900');
    await termsDialog.getByRole('button', { name: 'Save terms' }).click();
    const terms = subscriptionCard.getByRole('table', { name: 'Terms by period' });
    await untilText(terms, (text) => text.includes('900'), 'the new terms in the terms by period');
    const termRows = await terms.locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
    expect(termRows).toEqual([
      ['api-credits', '1', '750', "the plan's", 'operator'],
      ['api-credits', '2', '900', "the plan's", 'operator'],
    ]);
    await subscriptionCard.getByRole('button', { name: 'Cancel subscription' }).click();
    const cancelDialog = page.getByRole('dialog', { name: 'Cancel subscription: Monthly API' });
    await cancelDialog.getByRole('button', { name: 'Cancel subscription' }).click();
    await untilText(subscriptionCard, (text) => /Canceled .* by operator/.test(text), 'the cancellation on the card');
    expect(await subscriptionCard.getByRole('button', { name: 'Change terms' }).count()).toBe(0);
    await photograph(page, 'console-subscriptions.png', { fullPage: true });
    await page.getByRole('tab', { name: 'Credits' }).click();
    await untilText(amount, (text) => text === '1,847', 'the granted credits on the balance');

    // The offer ends: the plan is retired (after a confirmation) and no longer offered to subscribe to.
    await nav('Plans').click();
    await page.getByRole('button', { name: 'Retire Monthly API' }).click();
    await page.getByRole('dialog', { name: 'Retire plan: Monthly API' }).getByRole('button', { name: 'Retire plan' }).click();
    await untilText(planRow, (text) => /Retired .* by operator/.test(text), 'the retired plan');
    expect(await page.getByRole('button', { name: 'Retire Monthly API' }).count()).toBe(0);
    await page.goBack();
    await page.getByRole('tab', { name: 'Subscriptions' }).click();
    await untilText(page.getByLabel('Plan'), (text) => text.includes('No plans offered'), 'no plan to subscribe to');

    // A broken producer: its message is dead-lettered by the consumer and shows on Dead letters.
    await stack.producer.send({ topic: stack.usageTopic, messages: [{ key: customerId, value: '{"this is": not json' }] });
    await nav('Dead letters').click();
    const letters = page.getByRole('table', { name: 'Most recent dead letters' });
    await untilText(letters, (text) => text.includes('{"this is": not json') && text.includes(customerId), 'the dead letter on its page');
    // Counted, then sent back after a confirmation: refused for what it is, it is dead-lettered anew.
    const code = (await letters.locator('tbody tr').first().locator('td').nth(1).textContent()) ?? '';
    expect(code).toMatch(/^[a-z_]+$/);
    await page.getByLabel('Letters of').selectOption(code);
    await page.getByRole('button', { name: 'Count' }).click();
    const runs = page.getByRole('table', { name: 'Send-backs' });
    const runRow = runs.locator('tbody tr').first();
    await untilText(runRow, (text) => text.includes('Done (count only)') && text.includes('would be 1'), 'the count of the letter');
    expect(await runRow.locator('td').nth(1).textContent()).toBe('operator');
    expect(await runRow.locator('td').nth(2).textContent()).toBe(code);
    await page.getByRole('button', { name: 'Send back' }).click();
    const sendDialog = page.getByRole('dialog', { name: 'Send dead letters back' });
    await untilText(sendDialog, (text) => text.includes(`Sends the letters of ${code} back`), 'what the confirmation sends');
    await sendDialog.getByRole('button', { name: 'Send back' }).click();
    // Newest first: the send-back's row replaces the count's at the top.
    await untilText(runRow.locator('td').nth(4), (text) => text === 'Done', 'the send-back done');
    const sentRow = await runRow.locator('td').allTextContents();
    expect(sentRow.slice(4, 7)).toEqual(['Done', '1', '1']);
    await waitFor(async () => (await letters.locator('tbody tr', { hasText: '{"this is": not json' }).count()) === 2, {
      description: 'the letter dead-lettered anew',
      timeoutMs: 30_000,
    });
    // The original is marked sent back (the newest, dead-lettered anew, not yet).
    const sentBackColumn = await untilText(
      letters.locator('tbody tr', { hasText: '{"this is": not json' }).nth(1).locator('td').nth(7),
      (text) => text !== '',
      'the original letter marked sent back',
    );
    expect(sentBackColumn).toMatch(/\d/);
    expect(await letters.locator('tbody tr', { hasText: '{"this is": not json' }).first().locator('td').nth(7).textContent()).toBe('');
    // Narrowed by the API to a key, then to a key and a code, by keyboard (Enter submits).
    const filters = page.getByRole('search', { name: 'Filter dead letters' });
    await filters.getByLabel('Key (customer)').fill('nobody');
    await filters.getByRole('button', { name: 'Show' }).click();
    await untilText(letters.locator('tbody'), (text) => text.includes('No dead letters match.'), 'no letter of that key');
    await filters.getByLabel('Error code').selectOption(code);
    await filters.getByLabel('Key (customer)').fill(customerId);
    await filters.getByLabel('Key (customer)').press('Enter');
    await waitFor(async () => (await letters.locator('tbody tr', { hasText: '{"this is": not json' }).count()) === 2, {
      description: "the customer's letters of that code",
      timeoutMs: 30_000,
    });
    await filters.getByLabel('Error code').selectOption('');
    await filters.getByLabel('Key (customer)').fill('');
    await filters.getByRole('button', { name: 'Show' }).click();
    // A producer's record refused for what it says (no event name): read whole from the topic.
    const refused = { id: `refused-${customerId}`, customerId, event: '', timestamp: '2026-03-01T12:00:00Z', properties: { region: 'eu-west' } };
    await stack.producer.send({ topic: stack.usageTopic, messages: [{ key: customerId, value: JSON.stringify(refused), headers: { traceparent: 'trace-refused' } }] });
    const refusedRow = letters.locator('tbody tr', { hasText: refused.id });
    await waitFor(async () => (await refusedRow.count()) === 1, { description: 'the refused record listed', timeoutMs: 30_000 });
    // Its usage event, read from the record it failed on.
    expect(await refusedRow.locator('td').nth(4).textContent()).toBe(refused.id);
    await photograph(page, 'console-dead-letters.png', { fullPage: true });
    // By keyboard: the row's link, named for where the letter sits, opens the letter's page.
    const show = refusedRow.getByRole('link', { name: /^Show the whole letter \d+@\d+$/ });
    const where = (await show.getAttribute('aria-label'))!.replace('Show the whole letter ', '');
    await show.focus();
    await page.keyboard.press('Enter');
    // The link went with the list: focus starts at the letter's heading, as on every new screen.
    await untilFocused(page, 'H1', `Dead letter ${where}`);
    expect(await page.title()).toBe(`Dead letter ${where} – Tally console`);
    const why = page.getByRole('table', { name: 'Why it was not metered' });
    await untilText(why, (text) => text.includes('invalid_usage_event') && text.includes(customerId), 'why the letter was not metered');
    // The record's box scrolls: a region a keyboard reaches, named by its visible label.
    const record = page.getByRole('region', { name: 'Record', exact: true });
    expect(await record.getAttribute('tabindex')).toBe('0');
    expect(await page.getByText('Record', { exact: true }).isVisible()).toBe(true);
    expect(JSON.parse((await record.textContent()) ?? '')).toEqual(refused);
    const headerRows = await page.getByRole('table', { name: 'Headers' }).locator('tbody tr').allTextContents();
    expect(headerRows).toEqual(expect.arrayContaining(['traceparenttrace-refused', 'tally.dlq.error-codeinvalid_usage_event']));
    // The bytes whole, behind a disclosure a keyboard opens.
    await page.getByText('The value as base64').focus();
    await page.keyboard.press('Enter');
    expect(Buffer.from((await page.getByLabel('Value as base64').textContent()) ?? '', 'base64').toString('utf8')).toBe(JSON.stringify(refused));
    await photograph(page, 'console-dead-letter.png', { fullPage: true });
    // Sent back alone, after a confirmation: refused for what it says again, it is dead-lettered anew.
    await page.getByRole('button', { name: 'Send back' }).click();
    await page.getByRole('dialog', { name: 'Send this letter back' }).getByRole('button', { name: 'Send back' }).click();
    await untilText(page.getByRole('status').filter({ hasText: 'Send-back:' }), (text) => text === 'Send-back: Done: sent back to the usage topic', 'the letter sent back');
    await page.getByRole('link', { name: 'All dead letters' }).click();
    await untilFocused(page, 'H1', 'Dead letters');
    await waitFor(async () => (await refusedRow.count()) === 2, { description: 'the letter dead-lettered anew', timeoutMs: 30_000 });
    expect(await runRow.locator('td').nth(2).textContent()).toBe(`letter ${where}`);
    // Narrowed to the letters that name one usage event: the two of the refused record.
    await filters.getByLabel('Usage event id').fill(refused.id);
    await filters.getByLabel('Usage event id').press('Enter');
    await waitFor(async () => (await letters.locator('tbody tr').count()) === 2 && (await refusedRow.count()) === 2, {
      description: "the refused record's letters alone",
      timeoutMs: 30_000,
    });

    // Asked about on the customer's page, the event says it was dead-lettered, twice, and why,
    // each letter one link away; the one sent back says when.
    await openCustomer(page, customerId);
    const lookup = page.getByRole('search', { name: 'Usage event' });
    await lookup.getByLabel('Usage event id').fill(refused.id);
    await page.keyboard.press('Enter');
    await untilText(page.getByRole('status').filter({ hasText: refused.id }), (text) => text.includes('Not metered: it was dead-lettered 2 times.'), 'the dead-lettered event');
    const itsLetters = page.getByRole('table', { name: 'Its dead letters, newest first' });
    const letterRows = await itsLetters.locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
    expect(letterRows.map((row) => row.slice(1, 3))).toEqual([
      ['invalid_usage_event', expect.stringMatching(/^event must be 1-\d+ characters$/)],
      ['invalid_usage_event', expect.stringMatching(/^event must be 1-\d+ characters$/)],
    ]);
    expect(letterRows.map((row) => row[3] !== '')).toEqual([false, true]);
    expect(await itsLetters.getByRole('link', { name: `Show the whole letter ${where}` }).getAttribute('href')).toBe(`#/dead-letters/${where.replace('@', '/')}`);
    await photograph(page, 'console-usage-event-dead-lettered.png', { element: page.getByRole('region', { name: 'Find a usage event' }) });

    // The API process's health as an operator reads it: every dependency of the real stack up.
    await nav('Status').click();
    await untilText(page.getByRole('status').filter({ hasText: 'every check' }), (text) => text.startsWith('Up: every check passes. Checked '), 'the status');
    const checks = await page.getByRole('table', { name: 'Checks' }).locator('tbody tr').allTextContents();
    expect(checks).toEqual(['PostgreSQLUp', 'RedisUp', 'KafkaUp', 'Schema registryUp']);
    // The deployment's processors, each led by the main job (its pool names its roles).
    const processors = page.getByRole('table', { name: /^Processors \(event store head \d+\)$/ });
    await untilText(processors, (text) => /consumption/.test(text), 'the consumption projector among the processors');
    const rows = await processors.locator('tbody tr').evaluateAll((cells) => cells.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
    expect(rows.length).toBeGreaterThan(0);
    for (const [name, position, behind, , leader] of rows) {
      expect({ name, leader }).toEqual({ name, leader: expect.stringMatching(/^pid \d+ \(tally-consumer-projector-api-webhooks\)$/) });
      expect(BigInt(position!)).toBeGreaterThanOrEqual(0n);
      expect(BigInt(behind!)).toBeGreaterThanOrEqual(0n);
    }
    expect(complaints).toEqual([]);
    await consoleContext.close();
  });

  it('lets an operator register a webhook endpoint, read its deliveries, pause it, rotate its secret and delete it', async () => {
    // A receiver that answers 204 and keeps what it was sent.
    const received: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
    const receiver: Server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(204).end();
      });
    });
    const receiverPort = await freePort();
    await new Promise<void>((resolve) => receiver.listen(receiverPort, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${receiverPort}/tally-hook`;
    const context = await browser.newContext({ viewport: DESKTOP_VIEWPORT });
    try {
      const page = await context.newPage();
      const complaints: string[] = [];
      page.on('pageerror', (error) => complaints.push(String(error)));
      await stack.signIn(page);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();

      await page.getByLabel('Endpoint URL').fill(hookUrl);
      await page.getByLabel('Description').fill('billing alerts');
      await page.getByLabel(/Topped up by hand/).check();
      await page.getByRole('button', { name: 'Register endpoint' }).click();
      const secretInput = page.getByLabel(`Signing secret for ${hookUrl}`);
      await secretInput.waitFor();
      const secret = await secretInput.inputValue();
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      const card = page.getByRole('region', { name: `Endpoint ${hookUrl}` });
      await untilText(card, (text) => text.includes('by operator'), 'the new endpoint with who registered it');

      // A manual top-up, made after the registration: the endpoint receives it, signed with the secret the page showed.
      const product = (await (await api('POST', '/credit-products', { name: 'Webhook credits' })).json()) as { id: string };
      const balance = (await (await api('POST', `/customers/hooked-${randomUUID()}/credit-balances`, { productId: product.id })).json()) as { id: string };
      expect((await api('POST', `/credit-balances/${balance.id}/top-ups`, { credits: '25', reason: 'webhook test' })).status).toBe(201);
      const [message] = await waitFor(async () => (received.length > 0 ? received : undefined), { description: 'the webhook at the receiver', timeoutMs: 30_000, intervalMs: 100 });
      const { headers, body } = message!;
      expect(JSON.parse(body)).toMatchObject({ type: 'credit_balance.topped_up', data: { balance: { id: balance.id, balance: '25' } } });
      // Standard Webhooks: v1,base64(HMAC-SHA256(key, "id.timestamp.body")), the key being the secret's base64 after whsec_.
      const expected = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
        .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`)
        .digest('base64');
      expect(String(headers['webhook-signature']).split(' ')).toContain(`v1,${expected}`);

      await card.getByRole('button', { name: 'Show deliveries' }).click();
      const deliveries = card.getByRole('table', { name: 'Recent deliveries' });
      await untilText(deliveries, (text) => text.includes('succeeded'), 'the delivery in the table');
      const rows = await deliveries.locator('tbody tr').evaluateAll((trs) => trs.map((row) => [...row.children].map((cell) => cell.textContent ?? '')));
      expect(rows.map((cells) => [cells[0], cells[1], cells[2], cells[4]])).toEqual([['credit_balance.topped_up', balance.id, 'succeeded', 'HTTP 204']]);
      // Each row's Send again is named for its delivery, not only by its words.
      expect(await deliveries.getByRole('button', { name: `Send again credit_balance.topped_up of ${balance.id}, raised ` }).count()).toBe(1);
      // The attempts cell opens, by its summary, onto each attempt and what the receiver answered.
      const attempts = deliveries.locator('tbody tr details');
      await attempts.locator('summary').click();
      expect(await attempts.locator('summary').textContent()).toBe('1');
      await untilText(attempts.locator('li'), (text) => / ms: HTTP 204$/.test(text), 'the attempt with its answer');
      // A test message: an example, signed as deliveries are, answered in the card, recorded nowhere.
      await card.getByLabel('Test event').selectOption('credit_balance.topped_up');
      await card.getByRole('button', { name: 'Send test' }).click();
      await untilText(card.getByRole('status'), (text) => text.startsWith('Test credit_balance.topped_up delivered (HTTP 204)'), 'the test message answered');
      const test = received[1]!;
      expect(String(test.headers['webhook-id'])).toMatch(/^test_/);
      expect(JSON.parse(test.body)).toMatchObject({ type: 'credit_balance.topped_up', data: { balance: { id: 'example-balance' } } });
      const testSignature = createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
        .update(`${test.headers['webhook-id']}.${test.headers['webhook-timestamp']}.${test.body}`)
        .digest('base64');
      expect(String(test.headers['webhook-signature']).split(' ')).toContain(`v1,${testSignature}`);
      await photograph(page, 'console-webhooks.png', { fullPage: true });

      await card.getByRole('button', { name: 'Disable' }).click();
      await untilText(card, (text) => /disabled/.test(text) && /changed .* by operator/.test(text), 'the endpoint disabled by the operator');
      await card.getByRole('button', { name: 'Rotate secret' }).click();
      await untilText(page.getByRole('status').filter({ hasText: 'Signing secret' }), (text) => text.includes('previous secret'), 'the rotated secret');
      expect(await secretInput.inputValue()).not.toBe(secret);

      await card.getByRole('button', { name: 'Delete' }).click();
      const confirm = page.getByRole('dialog', { name: `Delete endpoint: ${hookUrl}` });
      await confirm.getByRole('button', { name: 'Delete endpoint' }).click();
      await page.getByText('No webhook endpoints yet.').waitFor();
      const remaining = await api('GET', '/webhook-endpoints');
      expect(remaining.status).toBe(200);
      expect(((await remaining.json()) as { items: unknown[] }).items).toEqual([]);
      expect(complaints).toEqual([]);
    } finally {
      await context.close();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });

  it("shows a bucket's exact credits in the consumption chart's legend, as its table does", async () => {
    const customerId = `fraction-${randomUUID()}`;
    const product = (await (await api('POST', '/credit-products', { name: 'Fraction credits', consumption: [{ event: 'sample', credits: '1.2345' }] })).json()) as { id: string };
    expect((await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' })).status).toBe(201);
    const context = await browser.newContext({ viewport: DESKTOP_VIEWPORT });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Fraction credits/ });
      await untilText(card.getByTestId('balance-amount'), (text) => text === '10', 'the opened balance');
      await publishUsage(customerId, 'sample', 1);
      await untilText(card.getByRole('table', { name: /by event/ }), (text) => /sample\s+1\.2345\s+1/.test(text), 'the charge in recent consumption');
      // One bucket: wherever the pointer is over the plot, the legend is that bucket's. uPlot's own
      // formatting would show 1.235 (three decimals); the legend shows what the API said.
      await card.locator('.chart-canvas .u-over').hover();
      const value = card.locator('.chart-canvas .u-legend .u-series').nth(1).locator('.u-value');
      await untilText(value, (text) => text === '1.2345', "the bucket's exact credits in the chart's legend");
    } finally {
      await context.close();
    }
  });

  it('refunds part of a metered charge from the console, by keyboard, once', async () => {
    const customerId = `refunded-${randomUUID()}`;
    const product = (await (await api('POST', '/credit-products', { name: 'Refund credits', consumption: [{ event: 'render', credits: '2' }] })).json()) as { id: string };
    const opened = await api('POST', `/customers/${customerId}/credit-balances`, { productId: product.id, startingBalance: '10' });
    expect(opened.status).toBe(201);
    const balanceId = ((await opened.json()) as { id: string }).id;
    const context = await browser.newContext({ viewport: DESKTOP_VIEWPORT });
    try {
      const page = await context.newPage();
      await stack.signIn(page);
      await openCustomer(page, customerId);
      const card = page.getByRole('region', { name: /Refund credits/ });
      const amount = card.getByTestId('balance-amount');
      await untilText(amount, (text) => text === '10', 'the opened balance');
      const [renderId] = await publishUsage(customerId, 'render', 1);
      await untilText(amount, (text) => text === '8', 'the metered render');

      // The whole ledger has the charge's own button, named for it; by keyboard, as every control of the console.
      const newest = card.getByRole('table', { name: 'Newest ledger entries' });
      await card.getByText('Ledger', { exact: true }).click();
      const ledger = card.getByRole('table', { name: 'Ledger, page 1' });
      const refund = ledger.getByRole('button', { name: /^Refund 2 credits of render at / });
      await refund.waitFor({ timeout: 30_000 });
      await refund.focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog', { name: 'Refund: Refund credits' });
      expect(await dialog.getByLabel('Credits').inputValue()).toBe('2');
      expect(await dialog.innerText()).toContain('render at');
      await dialog.getByLabel('Credits').fill('0.5');
      await dialog.getByLabel('Reason').fill('render failed');
      await dialog.getByRole('button', { name: 'Refund', exact: true }).click();
      await untilText(amount, (text) => text === '8.5', 'the refund on the balance');

      // The charge says it was refunded and offers no second refund; the refund is its own entry.
      await untilText(ledger, (text) => text.includes('render (refunded)') && text.includes('render failed'), 'the refunded charge and the refund');
      await untilText(newest, (text) => text.includes('render (refunded)'), 'the refunded charge among the newest entries too');
      // Recent consumption keeps the charge and says what its refund gave back.
      const byEvent = card.getByRole('table', { name: /by event/ });
      await untilText(byEvent, (text) => /render\s+2\s+1\s+0\.5/.test(text), 'the refund in recent consumption');
      expect(await ledger.getByRole('button', { name: /^Refund / }).count()).toBe(0);
      const refundRow = await ledger.locator('tbody tr').filter({ hasText: 'render failed' }).evaluate((row) => [...row.children].map((cell) => cell.textContent));
      expect(refundRow.slice(1, 5)).toEqual(['Refund', '+0.5', '8.5', 'render failed']);
      await photograph(page, 'console-refund.png', { element: card });

      // The statement of the month the balance opened in (the month its entries were recorded in,
      // read from the API, so a test across a month's end reads the right one), by keyboard.
      const entries = ((await (await api('GET', `/credit-balances/${balanceId}/ledger`)).json()) as { items: { recordedAt: string }[] }).items;
      const month = entries.at(-1)!.recordedAt.slice(0, 7);
      const stated = (await (
        await api('GET', `/credit-balances/${balanceId}/statement?from=${month}-01T00:00:00Z&to=${monthAfter(month, 1)}-01T00:00:00Z`)
      ).json()) as { toppedUp: string; consumed: string; closing: { balance: string } };
      const statementDetails = card.locator('details').filter({ has: page.getByText('Monthly statement', { exact: true }) });
      await statementDetails.getByText('Monthly statement', { exact: true }).focus();
      await page.keyboard.press('Enter');
      await statementDetails.getByLabel('Month', { exact: true }).fill(month);
      const statement = statementDetails.getByRole('table', { name: /^Statement for / });
      await untilText(statement, (text) => text.includes('Closing balance'), 'the month\'s statement');
      const rows = await statementRows(statement);
      // Opened, charged and refunded in that month: the starting balance and the refund added, the render used.
      expect(rows).toMatchObject({ 'Opening balance': '0', 'Starting balance': '+10', Refunds: '+0.5', Usage: '−2' });
      expect([rows.Added, rows.Used, rows['Closing balance']]).toEqual([`+${stated.toppedUp}`, `−${stated.consumed}`, stated.closing.balance]);
      await photograph(page, 'console-statement.png', { element: statementDetails });
      // The month before it: nothing yet, so nothing signed (0, not −0).
      await statementDetails.getByLabel('Month', { exact: true }).fill(monthAfter(month, -1));
      await untilText(statement, (text) => /: 0 entries/.test(text), 'the statement of the month before');
      expect(await statementRows(statement)).toMatchObject({ 'Opening balance': '0', Added: '0', Used: '0', 'Closing balance': '0' });

      // The render's usage event found by its id, by keyboard: metered, its charge (refunded) on this balance.
      const lookup = page.getByRole('search', { name: 'Usage event' });
      await lookup.getByLabel('Usage event id').fill(renderId!);
      await page.keyboard.press('Enter');
      const verdict = page.getByRole('status').filter({ hasText: renderId! });
      await untilText(verdict, (text) => text.includes('Metered: it wrote on one balance.'), 'the usage event found');
      const onBalance = page.getByRole('table', { name: 'On Refund credits' });
      const charge = await onBalance.locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].slice(1, 4).map((cell) => cell.textContent)));
      expect(charge).toEqual([['render (refunded)', '−2', '8']]);
      await photograph(page, 'console-usage-event.png', { element: page.getByRole('region', { name: 'Find a usage event' }) });
      // One that was never sent: not metered, and where to look.
      await lookup.getByLabel('Usage event id').fill(`never-sent-${randomUUID()}`);
      await page.keyboard.press('Enter');
      const notMetered = page.getByRole('status').filter({ hasText: 'never-sent-' });
      await untilText(notMetered, (text) => text.includes('Not metered'), 'the event not found');
      // Where to look next, one link away.
      expect(await notMetered.getByRole('link', { name: 'Dead letters' }).getAttribute('href')).toBe('#/dead-letters');
      expect(await notMetered.getByRole('link', { name: 'Status' }).getAttribute('href')).toBe('#/status');
      expect(await page.getByRole('table', { name: 'On Refund credits' }).count()).toBe(0);

      // The same page on a phone: its wide tables scroll in boxes a keyboard reaches, named by their captions.
      await page.setViewportSize(PHONE);
      const scrolling = page.getByRole('region', { name: 'Ledger, page 1' });
      await scrolling.waitFor();
      expect(await scrolling.getAttribute('tabindex')).toBe('0');
      await expectAccessible(page, 'the customer page on a phone');
    } finally {
      await context.close();
    }
  });

  it("renders the API's documentation at /docs under its Content-Security-Policy, and can call a route from it", async () => {
    const context = await browser.newContext({ viewport: DESKTOP_VIEWPORT });
    const page = await context.newPage();
    const complaints: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') complaints.push(message.text());
    });
    page.on('pageerror', (error) => complaints.push(String(error)));
    await page.goto(`${base}/docs`);
    await untilText(page.locator('.swagger-ui .info .title'), (text) => text.startsWith('Tally API'), "the document's title");
    await page.locator('.opblock-get .opblock-summary-path[data-path="/v1/credit-products"]').click();
    await page.getByRole('button', { name: 'Try it out' }).click();
    await page.getByRole('button', { name: 'Execute' }).click();
    // No key was given, so the API answers 401 in its error contract; the call itself went out and back.
    await untilText(page.locator('.responses-wrapper').first(), (text) => /Server response[\s\S]*\b401\b/.test(text), 'the response to the call');
    expect(complaints.filter((text) => !/status of 401/.test(text))).toEqual([]);
    await context.close();
  });
});
