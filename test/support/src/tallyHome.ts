import path from 'node:path';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Where the project's scripts keep what they install and run (`TALLY_HOME`, `.tally` by default). */
export function tallyHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.TALLY_HOME ?? path.join(REPO_ROOT, '.tally');
}
