import { readFileSync } from 'node:fs';

/** The parts of V8's .cpuprofile (what `node --cpu-prof` writes) that self time needs. */
interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }>;
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly percent: number;
}

export interface CpuProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly functions: readonly SelfTime[];
  /** The same self time grouped by package or folder: which library the time is spent in. */
  readonly areas: readonly SelfTime[];
}

/** Where a script lives, short: `kafkajs/src/protocol/decoder.js`, `services/metering/dist/usageConsumer.js`, `node:internal/...`. */
function shortLocation(url: string): string {
  if (url === '') return '';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + '/node_modules/'.length);
  const repo = /\/(services\/[^/]+\/.*|projections\/.*|schemas\/.*|test\/.*)$/.exec(url);
  return repo?.[1] ?? url.replace(/^file:\/\//, '');
}

/** A frame as the summaries name it: `function location:line`, or the bare name of a native frame. */
export function frameName({ functionName, url, lineNumber }: { readonly functionName: string; readonly url: string; readonly lineNumber: number }): string {
  const location = shortLocation(url);
  return location === '' ? functionName : `${functionName || '(anonymous)'} ${location}:${lineNumber + 1}`;
}

/** The package, or the Tally folder, a frame belongs to. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node core';
  const location = shortLocation(url);
  if (url.includes('/node_modules/')) {
    const parts = location.split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const tally = /^(services\/[^/]+|projections|schemas)\//.exec(location);
  return tally?.[1] ?? location;
}

function ranked(times: Map<string, number>, busyMs: number, limit: number): SelfTime[] {
  return [...times]
    .map(([name, selfMs]) => ({ name, selfMs, percent: (100 * selfMs) / busyMs }))
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, limit);
}

/** Self time per function (summed over every call site of it) and per package, busiest first. */
export function summariseCpuProfile(file: string, limit = 25): CpuProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let idleMs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!;
    const ms = us / 1000;
    if (frame.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const name = frameName(frame);
    functions.set(name, (functions.get(name) ?? 0) + ms);
    const area = areaOf(frame.url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const busyMs = totalMs - idleMs;
  return { totalMs, idleMs, busyMs, functions: ranked(functions, busyMs, limit), areas: ranked(areas, busyMs, limit) };
}

export function formatCpuProfileSummary(summary: CpuProfileSummary): string {
  const line = ({ name, selfMs, percent }: SelfTime) => `${percent.toFixed(1).padStart(5)}%  ${selfMs.toFixed(0).padStart(8)} ms  ${name}`;
  return [
    `profiled ${(summary.totalMs / 1000).toFixed(1)} s: busy ${(summary.busyMs / 1000).toFixed(1)} s, idle ${(summary.idleMs / 1000).toFixed(1)} s`,
    'self time by package (% of busy):',
    ...summary.areas.slice(0, 12).map(line),
    'self time by function (% of busy):',
    ...summary.functions.map(line),
  ].join('\n');
}
