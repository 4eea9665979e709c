import { readFileSync } from 'node:fs';
import { areaOf, frameName } from './cpuProfileSummary';

/** The parts of V8's sampling heap profile (.heapprofile) that self sizes need. */
interface HeapProfileNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly HeapProfileNode[];
}

export interface SelfBytes {
  readonly name: string;
  readonly bytes: number;
  /** Share of all sampled bytes. */
  readonly percent: number;
}

export interface HeapProfileSummary {
  readonly totalBytes: number;
  /** Bytes by the function that allocated them (summed over its call sites), largest first. */
  readonly functions: readonly SelfBytes[];
  /** The same bytes grouped by package or Tally folder. */
  readonly areas: readonly SelfBytes[];
}

function ranked(bytes: Map<string, number>, totalBytes: number, limit: number): SelfBytes[] {
  return [...bytes]
    .map(([name, size]) => ({ name, bytes: size, percent: totalBytes === 0 ? 0 : (100 * size) / totalBytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, limit);
}

/** A sampling heap profile's bytes by allocating function and by package, largest first. */
export function summariseHeapProfile(file: string, limit = 25): HeapProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { readonly head: HeapProfileNode };
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalBytes = 0;
  // Iterative: allocation stacks can be deeper than is safe to recurse through.
  const pending: HeapProfileNode[] = [profile.head];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    pending.push(...node.children);
    if (node.selfSize === 0) continue;
    const name = frameName(node.callFrame);
    functions.set(name, (functions.get(name) ?? 0) + node.selfSize);
    const area = areaOf(node.callFrame.url, node.callFrame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + node.selfSize);
    totalBytes += node.selfSize;
  }
  return { totalBytes, functions: ranked(functions, totalBytes, limit), areas: ranked(areas, totalBytes, limit) };
}

export function formatHeapProfileSummary(summary: HeapProfileSummary, top = 15): string {
  const mib = (bytes: number) => (bytes / 1_048_576).toFixed(1);
  const line = ({ name, bytes, percent }: SelfBytes) => `${percent.toFixed(1).padStart(5)}%  ${mib(bytes).padStart(8)} MiB  ${name}`;
  return [
    `sampled ${mib(summary.totalBytes)} MiB`,
    'by package:',
    ...summary.areas.slice(0, 8).map(line),
    'by allocating function:',
    ...summary.functions.slice(0, top).map(line),
  ].join('\n');
}
