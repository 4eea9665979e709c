import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { summariseCpuProfile, type CpuProfileSummary } from './cpuProfileSummary';

/** A profile a process wrote, summarised. */
export interface Collected<Summary> {
  readonly file: string;
  readonly summary: Summary;
}

/** A Tally process of the bench run under a profiler: what to start it with, and its result. */
export interface ProfiledProcess<Summary> {
  /** Where the profiled process writes (created); printed in the progress line. */
  readonly dir: string;
  /** The node arguments that make a process write its profile there on exit. */
  readonly nodeArgs: readonly string[];
  /** After the process exited: the profile it wrote, summarised. */
  collect(): Collected<Summary>;
}

export type CollectedProfile = Collected<CpuProfileSummary>;
export type CpuProfiling = ProfiledProcess<CpuProfileSummary>;

/**
 * `<bench-results>/profiles/<run id>/<what>/` (created), one folder per process so that each finds
 * its own profile, and how to collect the `extension` file the process leaves there.
 */
export function profileFolder<Summary>(
  resultsDir: string,
  runId: string,
  what: string,
  extension: string,
  summarise: (file: string) => Summary,
): { readonly dir: string; collect(): Collected<Summary> } {
  const dir = path.join(resultsDir, 'profiles', runId, what);
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    collect() {
      const file = readdirSync(dir).find((name) => name.endsWith(extension));
      if (file === undefined) throw new Error(`the profiled ${what} process wrote no ${extension} into ${dir}`);
      return { file: path.join(dir, file), summary: summarise(path.join(dir, file)) };
    },
  };
}

/** `--profile`: a Tally process of the bench runs under `node --cpu-prof`. */
export function cpuProfiling(resultsDir: string, runId: string, what: string): CpuProfiling {
  const folder = profileFolder(resultsDir, runId, what, '.cpuprofile', summariseCpuProfile);
  return { ...folder, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${folder.dir}`] };
}
