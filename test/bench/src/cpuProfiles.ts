import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { summariseCpuProfile, type CpuProfileSummary } from './cpuProfileSummary';

export interface CollectedProfile {
  readonly file: string;
  readonly summary: CpuProfileSummary;
}

export interface CpuProfiling {
  /** Where the profiled process writes (created); printed in the progress line. */
  readonly dir: string;
  /** The node arguments that make a process write its profile there on exit. */
  readonly nodeArgs: readonly string[];
  /** After the process exited: the profile it wrote, summarised. */
  collect(): CollectedProfile;
}

/**
 * `--profile`: a Tally process of the bench runs under `node --cpu-prof`, writing into
 * `<bench-results>/profiles/<run id>/<what>/`, one folder per process so that each finds its own.
 */
export function cpuProfiling(resultsDir: string, runId: string, what: string): CpuProfiling {
  const dir = path.join(resultsDir, 'profiles', runId, what);
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
    collect() {
      const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
      if (file === undefined) throw new Error(`the profiled ${what} process wrote no .cpuprofile into ${dir}`);
      return { file: path.join(dir, file), summary: summariseCpuProfile(path.join(dir, file)) };
    },
  };
}
