import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux Node runs on). */
const TICKS_PER_SECOND = 100;

/** A /proc/<pid>/stat line's command name and user + system seconds. */
export function parseStat(stat: string): { command: string; seconds: number } {
  // The fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and 13th.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return { command: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
}

/**
 * User + system CPU seconds of a process so far (Linux /proc; undefined elsewhere or once it has
 * gone). A rate varies with what else the machine runs; the CPU a process spent on the same work
 * varies much less, so a before/after pair on a noisy machine compares this.
 */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).seconds;
  } catch {
    return undefined;
  }
}

/**
 * User + system CPU seconds so far of every process named `command` (`postgres`: the server and
 * every backend; Linux /proc, undefined elsewhere). The difference over a measurement is what
 * that server spent on it, provided nothing else uses it meanwhile and no backend of the
 * measurement exits before the second reading (its time leaves /proc with it).
 */
export function commandCpuSeconds(command: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  let seconds = 0;
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = parseStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (stat.command === command) seconds += stat.seconds;
    } catch {
      // Gone between the listing and the read.
    }
  }
  return seconds;
}

/** CPU ms per 1,000 items between two readings, or undefined when either is unknown. */
export function msPerThousand(before: number | undefined, after: number | undefined, items: number): number | undefined {
  return before === undefined || after === undefined ? undefined : ((after - before) * 1000) / (items / 1000);
}
