import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tallyHome } from './tallyHome';

/**
 * Runs Prometheus's promtool (`scripts/ensure-deps.sh` takes it out of Debian's package) and
 * answers what it printed; `cwd` is where it resolves a test file's `rule_files`. It exits 1 on a
 * rule or configuration it refuses, or an expectation not met, and says which on stdout: that
 * is the error's message.
 */
export async function runPromtool(args: readonly string[], options: { readonly cwd?: string } = {}): Promise<string> {
  const promtool = path.join(tallyHome(), 'tools', 'promtool');
  if (!existsSync(promtool)) throw new Error(`${promtool} is missing; scripts/ensure-deps.sh installs it`);
  try {
    const { stdout, stderr } = await promisify(execFile)(promtool, [...args], options.cwd !== undefined ? { cwd: options.cwd } : {});
    return stdout + stderr;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${stdout}${stderr}`, { cause: error });
  }
}

/** The metric names a PromQL expression reads; a histogram's series (`_bucket`, `_count`, `_sum`) by the histogram's name. */
export function metricNamesIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:tally|nodejs|process)_[a-z0-9_]+)/g)].map((match) => match[1]!.replace(/_(bucket|count|sum)$/, ''));
}
