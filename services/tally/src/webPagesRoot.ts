import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/**
 * Where @tally/web's build (the console's and the portal's pages) is, for the API to serve.
 * `npm run build` makes it; a checkout built without it serves the API alone, and says so.
 */
export function webPagesRoot(logger: Logger): string | undefined {
  const root = path.join(path.dirname(require.resolve('@tally/web/package.json')), 'dist');
  if (existsSync(path.join(root, 'console', 'index.html'))) return root;
  logger.warn({ root }, 'the console and portal pages are not built (npm run build); serving the API without them');
  return undefined;
}
