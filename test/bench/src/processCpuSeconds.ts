import { readFileSync } from 'node:fs';

/**
 * User + system CPU seconds of a process so far (Linux /proc; undefined elsewhere or once it has
 * gone). A rate varies with what else the machine runs; the CPU a process spent on the same work
 * varies much less, so a before/after pair on a noisy machine compares this.
 */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    // The fields after the command name (which may hold spaces, hence the last ')'): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
