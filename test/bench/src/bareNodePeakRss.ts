import { execFileSync } from 'node:child_process';

/** VmHWM of a Node process of the same binary that loads nothing: the floor for any Node service here. */
export function bareNodePeakRssBytes(): number {
  const kilobytes = execFileSync(process.execPath, [
    '-e',
    'process.stdout.write(/VmHWM:\\s+(\\d+) kB/.exec(require("node:fs").readFileSync("/proc/self/status", "utf8"))[1])',
  ]).toString('utf8');
  return Number(kilobytes) * 1024;
}
