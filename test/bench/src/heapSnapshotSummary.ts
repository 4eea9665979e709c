import { readFileSync } from 'node:fs';

export interface HeapSnapshotEntry {
  /** V8's node type (object, string, array, closure, hidden, code, ...). */
  readonly type: string;
  /** The constructor or name; strings, code and internal arrays are grouped. */
  readonly name: string;
  readonly bytes: number;
  readonly count: number;
}

interface HeapSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

const GROUPED = new Set(['string', 'concatenated string', 'sliced string', 'code']);

/**
 * Self size of a V8 heap snapshot (.heapsnapshot, as --heapsnapshot-signal writes it) by node
 * type and name, largest first: which kinds of objects fill the heap. Not retained sizes (what
 * keeps them alive): open the file in Chrome's DevTools for that.
 */
export function summariseHeapSnapshot(file: string): { readonly totalBytes: number; readonly entries: HeapSnapshotEntry[] } {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const byKey = new Map<string, { type: string; name: string; bytes: number; count: number }>();
  let totalBytes = 0;
  for (let at = 0; at < snapshot.nodes.length; at += fields.length) {
    const type = types[snapshot.nodes[at + typeAt]!]!;
    const raw = snapshot.strings[snapshot.nodes[at + nameAt]!] ?? '';
    const name = GROUPED.has(type) ? `(${type})` : raw.slice(0, 80);
    const bytes = snapshot.nodes[at + sizeAt]!;
    totalBytes += bytes;
    const key = `${type}\u0000${name}`;
    const entry = byKey.get(key) ?? { type, name, bytes: 0, count: 0 };
    entry.bytes += bytes;
    entry.count += 1;
    byKey.set(key, entry);
  }
  return { totalBytes, entries: [...byKey.values()].sort((a, b) => b.bytes - a.bytes) };
}

export function formatHeapSnapshotSummary(summary: ReturnType<typeof summariseHeapSnapshot>, top = 25): string {
  const mib = (bytes: number) => (bytes / 1_048_576).toFixed(1);
  return [
    `heap: ${mib(summary.totalBytes)} MiB of objects (self size)`,
    '| MiB | objects | type | name |',
    '| ---: | ---: | --- | --- |',
    ...summary.entries.slice(0, top).map((e) => `| ${mib(e.bytes)} | ${e.count} | ${e.type} | ${e.name.replace(/\|/g, '\\|')} |`),
  ].join('\n');
}
