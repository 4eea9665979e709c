import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

/** Bytes between two samples: V8's default is 32 KiB; twice that keeps the profile small over a long run. */
const SAMPLING_INTERVAL_BYTES = 65_536;

/**
 * Runs inside a profiled Tally process (`--require`d by the preload promotedAllocations.ts writes):
 * V8's sampling heap profiler from the process's first line, keeping the sampled objects that a
 * full collection freed but dropping those a scavenge freed. What it writes at exit is therefore
 * every allocation that was promoted to the old generation (whether it died there or is still
 * alive), by the call stack that made it: what `--heap-prof` cannot show, as it keeps only what is
 * alive at exit, and the allocations the full collections pay for. The session is on the main
 * thread, where the inspector answers synchronously, so the profile is written from 'exit'.
 */
export function startPromotedSampling(dir: string): void {
  const session = new Session();
  session.connect();
  const failed = (what: string) => (error: Error | null) => {
    if (error !== null) process.stderr.write(`promoted-allocation sampling: ${what} failed: ${error.message}\n`);
  };
  session.post('HeapProfiler.enable', failed('enable'));
  session.post(
    'HeapProfiler.startSampling',
    { samplingInterval: SAMPLING_INTERVAL_BYTES, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false },
    failed('start'),
  );
  process.on('exit', () => {
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error !== null) return failed('stop')(error);
      writeFileSync(path.join(dir, `promoted-${process.pid}.heapprofile`), JSON.stringify(result.profile));
    });
  });
}
