import { cpuSecondsSpent, msPerThousand, parseStat } from './processCpuSeconds';

describe('processCpuSeconds', () => {
  it('reads the command name and user + system seconds of a stat line, whatever the name holds', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const line = '4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1200 0 3 0 1234 66 0 0 20 0 1 0';
    expect(parseStat(line)).toEqual({ command: 'a (b) c', seconds: 13 });
  });

  it('turns CPU seconds into ms per 1,000 items, unknown when the seconds are', () => {
    expect(msPerThousand(3.5 - 1.5, 20_000)).toBe(100);
    expect(msPerThousand(undefined, 20_000)).toBeUndefined();
  });

  it('sums what each process spent between two readings, never less than nothing', () => {
    const before = new Map([
      [10, 5],
      [11, 2],
      [12, 7],
    ]);
    // 10 spent 1.5; 11 exited (its time went with it); 13 started; 12 is a reused pid, new process.
    const after = new Map([
      [10, 6.5],
      [12, 0.25],
      [13, 0.5],
    ]);
    expect(cpuSecondsSpent(before, after)).toBe(2.25);
    expect(cpuSecondsSpent(before, new Map())).toBe(0);
    expect(cpuSecondsSpent(undefined, after)).toBeUndefined();
    expect(cpuSecondsSpent(before, undefined)).toBeUndefined();
  });
});
