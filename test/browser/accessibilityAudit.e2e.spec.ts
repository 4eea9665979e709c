import { auditAccessibility, launchChromium, type Browser } from '@tally/test-support';

/**
 * The audit every photographed screen passes (startConsoleStack's `photograph`) finds what it is
 * there to find: on a page with the faults the console and the portal once had or could have, it
 * names each by its rule and element. Without this, an audit that found nothing could pass them all.
 */
jest.setTimeout(60_000);

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
