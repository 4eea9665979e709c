import { execFileSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';

export type { Browser, BrowserContext, Locator, Page } from 'playwright-core';

/**
 * Debian's Chromium, which scripts/ensure-deps.sh installs when it is missing: playwright-core
 * drives it through `executablePath` and never downloads a browser of its own. TALLY_CHROMIUM
 * names another binary.
 */
export function chromiumPath(): string {
  const named = process.env.TALLY_CHROMIUM;
  if (named !== undefined && named !== '') return named;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    throw new Error('Chromium is not installed: run scripts/ensure-deps.sh (apt-get install chromium), or set TALLY_CHROMIUM');
  }
}

/** A headless Chromium for one test file; close it in afterAll. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Tests run as root on CI, where Chromium's sandbox cannot start; /dev/shm is small in containers.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}
