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

/** User + system CPU seconds so far of each process of one command, by pid. */
export type CommandCpuReading = ReadonlyMap<number, number>;

/**
 * User + system CPU seconds so far of every process named `command` (`postgres`: the server and
 * every backend; Linux /proc, undefined elsewhere), by pid: cpuSecondsSpent turns two readings
 * into what that server spent between them, provided nothing else uses it meanwhile.
 */
export function commandCpuSeconds(command: string): CommandCpuReading | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const seconds = new Map<number, number>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = parseStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (stat.command === command) seconds.set(Number(entry), stat.seconds);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return seconds;
}

/**
 * The CPU seconds a command's processes spent between two readings, summed per process: one
 * that exited in between took its time with it, and is left out rather than subtracted (a
 * difference of two sums went negative when a backend exited); one that started in between
 * counts whole, and so does a pid reused by a new process when its time shows it (below the old one's).
 */
export function cpuSecondsSpent(before: CommandCpuReading | undefined, after: CommandCpuReading | undefined): number | undefined {
  if (before === undefined || after === undefined) return undefined;
  let spent = 0;
  for (const [pid, seconds] of after) {
    const earlier = before.get(pid) ?? 0;
    spent += seconds >= earlier ? seconds - earlier : seconds;
  }
  return spent;
}

/** CPU seconds spent on `items` as ms per 1,000 of them, or undefined when the seconds are unknown. */
export function msPerThousand(seconds: number | undefined, items: number): number | undefined {
  return seconds === undefined ? undefined : (seconds * 1000) / (items / 1000);
}

/**
 * CPU spent from its start on work done in this process, as ms per 1,000 items: the process's own,
 * and that of every process of each named command (`postgres`, `redis-server`) over the same time.
 */
export function startCpuWindow(commands: readonly string[]): {
  /** This process's user + system time since the start. */
  selfMsPerThousand(items: number): number;
  /** The command's processes since the start (cpuSecondsSpent); undefined where /proc could not tell, or for a command not named at the start. */
  commandMsPerThousand(command: string, items: number): number | undefined;
} {
  const self = process.cpuUsage();
  const before = new Map(commands.map((command) => [command, commandCpuSeconds(command)]));
  return {
    selfMsPerThousand(items) {
      const used = process.cpuUsage(self);
      return msPerThousand((used.user + used.system) / 1e6, items)!;
    },
    commandMsPerThousand: (command, items) => msPerThousand(cpuSecondsSpent(before.get(command), commandCpuSeconds(command)), items),
  };
}

