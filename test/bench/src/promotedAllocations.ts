import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { profileFolder, type Collected, type ProfiledProcess } from './cpuProfiles';
import { summariseHeapProfile, type HeapProfileSummary } from './heapProfileSummary';

export type CollectedHeapProfile = Collected<HeapProfileSummary>;

/**
 * `--promoted-allocations`: a Tally process of the bench samples what it allocates that survives
 * into the old generation (promotedSampler.ts), into `<bench-results>/profiles/<run id>/<what>/`.
 * The process is given a one-line preload written there, which starts the sampler with that
 * folder: node's `--require` takes no argument of its own.
 */
export function promotedAllocations(resultsDir: string, runId: string, what: string): ProfiledProcess<HeapProfileSummary> {
  const folder = profileFolder(resultsDir, runId, what, '.heapprofile', summariseHeapProfile);
  const preload = path.join(folder.dir, 'preload.js');
  writeFileSync(preload, `require(${JSON.stringify(path.join(__dirname, 'promotedSampler.js'))}).startPromotedSampling(${JSON.stringify(folder.dir)});\n`);
  return { ...folder, nodeArgs: ['--require', preload] };
}
