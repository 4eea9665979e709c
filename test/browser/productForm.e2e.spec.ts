import { randomUUID } from 'node:crypto';
import { waitFor, type Page } from '@tally/test-support';
import { DESKTOP_VIEWPORT, expectAccessible, openCustomer, PHONE_VIEWPORT, startConsoleStack, untilFocused, untilText, type ConsoleStack } from './startConsoleStack';

/**
 * The console's product form keeps what it did not change, and never undoes a change it did not
 * see; the catalog names the stored products that fail validation. In Chromium against the real
 * main job on the local stack; a stored product that fails validation is written with SQL, as an
 * older version or a hand edit would have.
 */
jest.setTimeout(240_000);

const ADMIN_KEY = `browser-admin-${randomUUID()}`;

interface StoredProduct {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly consumption: unknown[];
  readonly lowBalanceThreshold: string | null;
  readonly bundles: unknown[];
  readonly revision: number;
}

describe("the console's product form and catalog", () => {
  let stack: ConsoleStack;

  beforeAll(async () => {
    stack = await startConsoleStack({ prefix: 'browser_products', roles: 'api', adminKey: ADMIN_KEY });
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

  /** The product's form, opened from the catalog as an operator does. */
  async function openProduct(page: Page, product: { id: string; name: string }): Promise<void> {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Catalog' }).click();
    await page.getByRole('link', { name: product.name, exact: true }).click();
    await page.getByRole('heading', { name: `Edit ${product.name}` }).waitFor();
    await page.getByRole('button', { name: 'Save changes' }).waitFor();
  }

  it("saves a product without rewriting its rules' property filters, whatever their values, and sends a filter typed as typed", async () => {
    // Each of these the form once rewrote on any save (joined with ", ", split on "," and trimmed):
    // the rule then matched no usage, and its charges were lost as no_matching_rule.
    const consumption = [
      { event: 'api_call', credits: '1', where: { region: 'eu-west,eu-central' } },
      { event: 'api_call', credits: '2', where: { plan: 'Pro, annual' } },
      { event: 'tokens', credits: '0.001', perUnitOf: 'count', where: { model: ' large', 'a=b': 'x' } },
    ];
    const created = await api<StoredProduct>('POST', '/credit-products', {
      name: `Filtered ${randomUUID()}`,
      consumption,
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
    });
    const page = await signedIn();
    try {
      await openProduct(page, created);
      const rule = (number: number) => page.getByRole('group', { name: `Rule ${number}`, exact: true });
      const filters = (number: number) => rule(number).getByRole('group', { name: 'Property filters' });
      // Each filter in a row of its own, as stored (PostgreSQL's jsonb keeps the properties in an order of its own).
      const values = (label: string) => filters(3).getByLabel(label, { exact: true }).evaluateAll((inputs) => inputs.map((input) => (input as unknown as { value: string }).value));
      const [properties, filterValues] = [await values('Property'), await values('Value')];
      expect(Object.fromEntries(properties.map((property, at) => [property, filterValues[at]]))).toEqual({ model: ' large', 'a=b': 'x' });
      expect(properties).toHaveLength(2);
      await expectAccessible(page, 'the product form with filters');

      // A rename keeps every rule as it was.
      const renamed = `Renamed ${randomUUID()}`;
      await page.getByLabel('Name', { exact: true }).fill(renamed);
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      const afterRename = await api<StoredProduct>('GET', `/credit-products/${created.id}`);
      expect(afterRename).toEqual({ ...created, name: renamed, revision: created.revision + 1 });

      // A filter with no property is not sent: it would match no usage.
      await filters(1).getByRole('button', { name: 'Add filter' }).click();
      await page.getByRole('button', { name: 'Save changes' }).click();
      const propertyError = filters(1).locator('.field.has-error', { has: page.getByLabel('Property', { exact: true }) }).getByRole('alert');
      await untilText(propertyError, (text) => text.includes('name the property'), 'the empty property refused');
      expect((await api<StoredProduct>('GET', `/credit-products/${created.id}`)).revision).toBe(afterRename.revision);
      // Typed in its row, a value with commas and spaces goes as typed.
      await filters(1).getByLabel('Property', { exact: true }).nth(1).fill('tier');
      await filters(1).getByLabel('Value', { exact: true }).nth(1).fill(' gold, plus ');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect((await api<StoredProduct>('GET', `/credit-products/${created.id}`)).consumption).toEqual([
        { event: 'api_call', credits: '1', where: { region: 'eu-west,eu-central', tier: ' gold, plus ' } },
        consumption[1],
        consumption[2],
      ]);

      // A rule the same as another is not sent: every matching rule applies, so each event would cost twice.
      await page.getByRole('button', { name: 'Add consumption rule' }).click();
      await rule(4).getByLabel('Event name', { exact: true }).fill('api_call');
      await rule(4).getByLabel('Credits', { exact: true }).fill('2.0');
      await filters(4).getByRole('button', { name: 'Add filter' }).click();
      await filters(4).getByLabel('Property', { exact: true }).fill('plan');
      await filters(4).getByLabel('Value', { exact: true }).fill('Pro, annual');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await untilText(rule(4).getByRole('alert').first(), (text) => text.includes('rule 4 is the same as rule 2'), 'the repeated rule refused');
      expect((await api<StoredProduct>('GET', `/credit-products/${created.id}`)).consumption).toHaveLength(3);
      await rule(4).getByRole('button', { name: 'Remove rule 4' }).click();

      // A removed row's button hands focus to its group's Add button, not to the page.
      await filters(1).getByRole('button', { name: 'Remove filter 2' }).click();
      await untilFocused(page, 'BUTTON', 'Add filter');
      await rule(2).getByRole('button', { name: 'Remove rule 2' }).click();
      await untilFocused(page, 'BUTTON', 'Add consumption rule');
      await page.getByRole('button', { name: 'Remove bundle 1' }).click();
      await untilFocused(page, 'BUTTON', 'Add bundle');
      await page.setViewportSize(PHONE_VIEWPORT);
      await expectAccessible(page, 'the product form with filters on a phone');
    } finally {
      await page.context().close();
    }
  });

  /** Presses Enter on the button named `name`, as a keyboard does: the button takes focus first. */
  async function pressButton(page: Page, name: string): Promise<void> {
    const button = page.getByRole('button', { name, exact: true });
    await button.focus();
    await untilFocused(page, 'BUTTON', name);
    await page.keyboard.press('Enter');
  }

  it("keeps the operator's edit when someone else changed the product meanwhile, names the fields both changed, and saves it on the current version", async () => {
    const created = await api<StoredProduct>('POST', '/credit-products', { name: `Contested ${randomUUID()}`, description: 'Original', consumption: [{ event: 'render', credits: '2' }] });
    const page = await signedIn();
    try {
      await openProduct(page, created);
      // Behind the form's back, another operator changes the price of a render and the description.
      const elsewhere = await api<StoredProduct>('PATCH', `/credit-products/${created.id}`, { consumption: [{ event: 'render', credits: '3' }], description: 'Changed elsewhere' });
      await page.getByLabel('Name', { exact: true }).fill('Mine');
      await page.getByLabel('Description').fill('Mine too');
      await pressButton(page, 'Save changes');
      const alert = page.getByRole('main').getByRole('alert');
      await untilText(alert, (text) => text.includes('someone else changed this product') && text.includes(`revision ${elsewhere.revision}`), 'the change made elsewhere');
      // Nothing saved, nothing typed lost, and the one field both changed named with each side's value.
      expect(await api<StoredProduct>('GET', `/credit-products/${created.id}`)).toEqual(elsewhere);
      expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('Mine');
      expect(await page.getByLabel('Description').inputValue()).toBe('Mine too');
      expect(await page.getByRole('main').getByRole('listitem').allInnerTexts()).toEqual(['Description: theirs "Changed elsewhere"; yours "Mine too"']);
      await expectAccessible(page, 'a save refused for a change made elsewhere');

      // Applied to the current version: theirs where the operator changed nothing, the operator's elsewhere; said where focus goes.
      await pressButton(page, 'Apply my changes to the current version');
      await untilFocused(page, 'P', `Your changes are applied to revision ${elsewhere.revision}, the current version: review them, then save.`);
      expect(await page.getByRole('status').filter({ hasText: 'Your changes are applied' }).count()).toBe(1);
      expect(await page.getByRole('main').getByRole('listitem').allInnerTexts()).toEqual(['Description: theirs was "Changed elsewhere"']);
      expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('Mine');
      expect(await page.getByLabel('Description').inputValue()).toBe('Mine too');
      expect(await page.getByLabel('Credits', { exact: true }).inputValue()).toBe('3');
      await expectAccessible(page, 'changes applied to the current version');
      await pressButton(page, 'Save changes');
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(await api<StoredProduct>('GET', `/credit-products/${created.id}`)).toEqual({ ...elsewhere, name: 'Mine', description: 'Mine too', revision: elsewhere.revision + 1 });
      expect(await page.getByRole('status').filter({ hasText: 'Your changes are applied' }).count()).toBe(0);
    } finally {
      await page.context().close();
    }
  });

  it('discards the operator\'s changes on request after a change made elsewhere, shows the current version, and saves on top of it', async () => {
    const created = await api<StoredProduct>('POST', '/credit-products', { name: `Discarded ${randomUUID()}`, consumption: [{ event: 'render', credits: '2' }] });
    const page = await signedIn();
    try {
      await openProduct(page, created);
      const elsewhere = await api<StoredProduct>('PATCH', `/credit-products/${created.id}`, { consumption: [{ event: 'render', credits: '3' }], description: 'Changed elsewhere' });
      await page.getByLabel('Name', { exact: true }).fill('Overwriting');
      await pressButton(page, 'Save changes');
      await untilText(page.getByRole('main').getByRole('alert'), (text) => text.includes('someone else changed this product'), 'the change made elsewhere');
      // They changed none of the fields the operator did.
      await untilText(page.getByRole('main'), (text) => text.includes('They changed Description, Consumption rules; you changed Name: none of the same fields.'), 'the fields each changed');
      await pressButton(page, 'Discard my changes');
      await untilFocused(page, 'H1', `Edit ${created.name}`);
      expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe(created.name);
      expect(await page.getByLabel('Description').inputValue()).toBe('Changed elsewhere');
      expect(await page.getByLabel('Credits', { exact: true }).inputValue()).toBe('3');
      expect(await page.getByRole('main').getByRole('alert').count()).toBe(0);
      await page.getByLabel('Name', { exact: true }).fill('Saved after discard');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(await api<StoredProduct>('GET', `/credit-products/${created.id}`)).toEqual({ ...elsewhere, name: 'Saved after discard', revision: elsewhere.revision + 1 });
      // And the next save is made against the version that one answered.
      await page.getByLabel('Description').fill('Saved twice');
      await waitFor(async () => (await page.getByText('Saved.', { exact: true }).count()) === 0, { description: 'the form changed since saved', timeoutMs: 10_000 });
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(await api<StoredProduct>('GET', `/credit-products/${created.id}`)).toMatchObject({ name: 'Saved after discard', description: 'Saved twice', revision: elsewhere.revision + 2 });
    } finally {
      await page.context().close();
    }
  });

  it('lists the stored products that fail validation as needing repair, opens one with why beside the field, and repairs it when saved', async () => {
    const broken = await api<StoredProduct>('POST', '/credit-products', {
      id: `broken-${randomUUID()}`,
      name: 'Broken credits',
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
    });
    // A currency the API would refuse, written as an older release that accepted it would have: the product and its revision.
    const lowercase = '[{"id":"starter","credits":"100","price":{"amount":"9.90","currency":"eur"},"purchaseOption":true}]';
    await stack.query(`UPDATE credit_products SET bundles = $2::jsonb WHERE id = $1`, [broken.id, lowercase]);
    await stack.query(`UPDATE credit_product_revisions SET product = jsonb_set(product, '{bundles}', $2::jsonb) WHERE product_id = $1`, [broken.id, lowercase]);
    const page = await signedIn();
    try {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Catalog' }).click();
      const repair = page.getByRole('region', { name: 'Needs repair' });
      await untilText(repair, (text) => text.includes(broken.id) && text.includes('currency'), 'the broken product listed');
      expect(await page.getByRole('table', { name: 'Credit products' }).innerText()).not.toContain(broken.id);
      await expectAccessible(page, 'the catalog with a product needing repair');
      await repair.getByRole('link', { name: broken.id }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Edit Broken credits' }).waitFor();
      await untilText(page.getByRole('main').getByRole('alert').first(), (text) => text.includes('fails validation') && text.includes('currency'), 'why it fails');
      // Seeded as stored, the reason beside the field it concerns.
      const currency = page.getByLabel('Currency');
      expect(await currency.inputValue()).toBe('eur');
      expect(await currency.getAttribute('aria-invalid')).toBe('true');
      expect(await page.locator('.field.has-error', { has: currency }).innerText()).toContain('ISO 4217');
      expect(await page.getByLabel('Price').inputValue()).toBe('9.90');
      await expectAccessible(page, 'a product needing repair opened');

      await currency.fill('EUR');
      await pressButton(page, 'Save changes');
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(await page.getByRole('main').getByRole('alert').count()).toBe(0);
      expect(await api<StoredProduct>('GET', `/credit-products/${broken.id}`)).toEqual({ ...broken, revision: broken.revision + 1 });
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Catalog' }).click();
      await untilText(page.getByRole('table', { name: 'Credit products' }), (text) => text.includes(broken.id), 'the repaired product listed');
      expect(await page.getByRole('region', { name: 'Needs repair' }).count()).toBe(0);
    } finally {
      await page.context().close();
    }
  });

  it('opens a product broken by a hand edit its history does not hold with the hand-edited values, as stored, and repairs it', async () => {
    const broken = await api<StoredProduct>('POST', '/credit-products', {
      id: `hand-edited-${randomUUID()}`,
      name: 'Hand edited',
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
    });
    // In credit_products alone, as SQL by hand would: no revision written, so the history still holds the product as created.
    await stack.query(
      `UPDATE credit_products SET name = 'Edited by hand', bundles = '[{"id":"starter","credits":"250","price":{"amount":"19.90","currency":"eur"}}]' WHERE id = $1`,
      [broken.id],
    );
    const page = await signedIn();
    try {
      // Opened by its address, as a link shared from the catalog would.
      await page.goto(`${stack.base}/console#/catalog/${encodeURIComponent(broken.id)}`);
      await page.getByRole('heading', { name: 'Edit Edited by hand' }).waitFor();
      await untilText(page.getByRole('main').getByRole('alert').first(), (text) => text.includes('fails validation') && text.includes('currency'), 'why it fails');
      // The hand edit's values, not the newest recorded version's; the reason beside its field.
      const currency = page.getByLabel('Currency');
      expect([await page.getByLabel('Name').inputValue(), await currency.inputValue(), await page.getByLabel('Price').inputValue()]).toEqual(['Edited by hand', 'eur', '19.90']);
      expect(await currency.getAttribute('aria-invalid')).toBe('true');
      expect(await page.locator('.field.has-error', { has: currency }).innerText()).toContain('ISO 4217');
      expect(await page.getByRole('main').innerText()).not.toContain('recorded');

      await currency.fill('EUR');
      await pressButton(page, 'Save changes');
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(await api<StoredProduct>('GET', `/credit-products/${broken.id}`)).toEqual({
        ...broken,
        name: 'Edited by hand',
        bundles: [{ id: 'starter', credits: '250', price: { amount: '19.90', currency: 'EUR' }, purchaseOption: true }],
        revision: broken.revision + 1,
      });
    } finally {
      await page.context().close();
    }
  });

  it('renames a product stored with a repeated rule, a filter on no property and an unknown currency, and says which rule or bundle is refused once its rules or bundles are changed', async () => {
    const created = await api<StoredProduct>('POST', '/credit-products', {
      id: `stored-twice-${randomUUID()}`,
      name: `Stored twice ${randomUUID()}`,
      consumption: [{ event: 'api_call', credits: '1' }],
      bundles: [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'EUR' } }],
    });
    // As a release from before these refusals wrote it: the product and its revision.
    const consumption = [{ event: 'api_call', credits: '1' }, { event: 'api_call', credits: '1' }, { event: 'api_call', credits: '2', where: { '': 'x' } }];
    const bundles = [{ id: 'starter', credits: '100', price: { amount: '9.90', currency: 'ZZZ' }, purchaseOption: true }];
    await stack.query('UPDATE credit_products SET consumption = $2::jsonb, bundles = $3::jsonb WHERE id = $1', [created.id, JSON.stringify(consumption), JSON.stringify(bundles)]);
    await stack.query(`UPDATE credit_product_revisions SET product = jsonb_set(jsonb_set(product, '{consumption}', $2::jsonb), '{bundles}', $3::jsonb) WHERE product_id = $1`, [
      created.id,
      JSON.stringify(consumption),
      JSON.stringify(bundles),
    ]);
    const page = await signedIn();
    const patches: unknown[] = [];
    page.on('request', (request) => {
      if (request.method() === 'PATCH' && request.url().includes(`/v1/credit-products/${created.id}`)) patches.push(request.postDataJSON());
    });
    try {
      await openProduct(page, created);
      // A rename sends neither the rules nor the bundles: the API keeps them as stored, and takes it.
      await page.getByLabel('Name', { exact: true }).fill('Renamed twice');
      await pressButton(page, 'Save changes');
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(patches).toEqual([{ name: 'Renamed twice', description: '', lowBalanceThreshold: null }]);
      expect(await api<StoredProduct>('GET', `/credit-products/${created.id}`)).toEqual({ ...created, name: 'Renamed twice', consumption, bundles, revision: created.revision + 1 });

      // A bundle changed sends the bundles, whose currency the API refuses: said beside that bundle's currency.
      const bundle = page.getByRole('group', { name: 'Bundle 1', exact: true });
      await bundle.getByLabel('Price').fill('19.90');
      await pressButton(page, 'Save changes');
      const currency = bundle.getByLabel('Currency');
      await untilText(bundle.locator('.field.has-error', { has: page.getByLabel('Currency') }), (text) => text.includes('"ZZZ" is not an ISO 4217 currency code'), "the bundle's currency refused");
      expect(patches).toHaveLength(2);
      await currency.fill('EUR');
      await pressButton(page, 'Save changes');
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      expect(patches[2]).toEqual({ name: 'Renamed twice', description: '', lowBalanceThreshold: null, bundles: [{ id: 'starter', credits: '100', price: { amount: '19.90', currency: 'EUR' }, purchaseOption: true }] });

      // A rule changed sends the rules: the repeated one and the filter on no property are refused before sending, by the row.
      const rule = (number: number) => page.getByRole('group', { name: `Rule ${number}`, exact: true });
      await rule(3).getByLabel('Credits', { exact: true }).fill('3');
      await pressButton(page, 'Save changes');
      await untilText(rule(2).getByRole('alert').first(), (text) => text.includes('rule 2 is the same as rule 1'), 'the repeated rule refused');
      await untilText(rule(3).locator('.field.has-error'), (text) => text.includes('name the property'), 'the filter on no property refused');
      expect(patches).toHaveLength(3);
      expect((await api<StoredProduct>('GET', `/credit-products/${created.id}`)).consumption).toEqual(consumption);
    } finally {
      await page.context().close();
    }
  });

  it("keeps focus on a plan's products when one is removed, ties the endpoint events' refusal to their checkboxes, and says when a subscription's warning limit reaches the balance", async () => {
    const customerId = `limits-${randomUUID()}`;
    const product = await api<StoredProduct>('POST', '/credit-products', { name: `Plan credits ${randomUUID()}` });
    const planName = `Limits ${randomUUID()}`;
    const plan = await api<{ id: string }>('POST', '/plans', { name: planName, items: [{ productId: product.id, creditsPerPeriod: '10', period: 'month' }] });
    await api('POST', '/subscriptions', { customerId, planId: plan.id });
    const page = await signedIn();
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
    try {
      await nav('Plans').click();
      const planForm = page.locator('form', { has: page.getByRole('button', { name: 'Create plan' }) });
      await planForm.getByRole('button', { name: 'Add credit product to plan' }).click();
      await planForm.getByRole('button', { name: 'Add credit product to plan' }).click();
      await planForm.getByRole('button', { name: 'Remove credit product 2' }).click();
      await untilFocused(page, 'BUTTON', 'Add credit product to plan');

      // No event type the form offers is refused by the API today: the refusal stands in for one.
      await nav('Webhooks').click();
      const hookForm = page.locator('form', { has: page.getByRole('button', { name: 'Register endpoint' }) });
      await hookForm.getByLabel('Endpoint URL').fill(`https://hooks.example/${randomUUID()}`);
      const registrations = (url: URL) => url.pathname === '/v1/webhook-endpoints';
      await page.route(registrations, (route) =>
        route.request().method() === 'POST'
          ? route.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify({ error: 'validation_failed', message: 'body.events must NOT have more than 3 items' }) })
          : route.continue(),
      );
      await hookForm.getByRole('button', { name: 'Register endpoint' }).click();
      const events = hookForm.getByRole('group', { name: 'Events to send' });
      const refusal = events.getByRole('alert');
      await untilText(refusal, (text) => text.includes('must NOT have more than 3 items'), 'the events refused');
      const describedBy = await events.getAttribute('aria-describedby');
      expect(describedBy).toBe(await refusal.getAttribute('id'));
      await expectAccessible(page, 'the events refused');
      await page.unroute(registrations);

      await openCustomer(page, customerId);
      await page.getByRole('tab', { name: 'Subscriptions' }).click();
      await page.getByRole('button', { name: 'Change terms' }).click();
      const terms = page.getByRole('dialog', { name: `Change terms: ${planName}` });
      const limit = terms.getByLabel('Warning limit for this subscription');
      const hintId = await limit.getAttribute('aria-describedby');
      expect(await terms.locator(`[id="${hintId}"]`).innerText()).toMatch(/set on the balance when its next period is granted.*same limit saved again/);
    } finally {
      await page.context().close();
    }
  });
});
