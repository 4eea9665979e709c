import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatHeapSnapshotSummary, summariseHeapSnapshot } from './heapSnapshotSummary';

describe('summariseHeapSnapshot', () => {
  it('adds self sizes by type and name, strings grouped, largest first', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heap-'));
    try {
      const file = path.join(dir, 'a.heapsnapshot');
      // node_fields: type, name, id, self_size, edge_count; types: 0 hidden, 1 object, 2 string.
      const snapshot = {
        snapshot: { meta: { node_fields: ['type', 'name', 'id', 'self_size', 'edge_count'], node_types: [['hidden', 'object', 'string']] } },
        nodes: [1, 0, 1, 100, 0, 1, 0, 2, 50, 0, 2, 1, 3, 30, 0, 2, 2, 4, 40, 0, 1, 3, 5, 10, 0],
        strings: ['Buffer', 'abc', 'def', 'Map'],
      };
      writeFileSync(file, JSON.stringify(snapshot));
      const summary = summariseHeapSnapshot(file);
      expect(summary.totalBytes).toBe(230);
      expect(summary.entries).toEqual([
        { type: 'object', name: 'Buffer', bytes: 150, count: 2 },
        { type: 'string', name: '(string)', bytes: 70, count: 2 },
        { type: 'object', name: 'Map', bytes: 10, count: 1 },
      ]);
      expect(formatHeapSnapshotSummary(summary, 1).split('\n')).toHaveLength(4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
