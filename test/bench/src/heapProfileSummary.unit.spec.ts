import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatHeapProfileSummary, summariseHeapProfile } from './heapProfileSummary';

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber, scriptId: '0', columnNumber: 0 });

describe('summariseHeapProfile', () => {
  it('adds self sizes by allocating function, over every stack it allocates in, and by package, largest first', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'heap-profile-'));
    try {
      const file = path.join(dir, 'a.heapprofile');
      const iso = frame('isoFromMillis', 'file:///r/services/event-store/dist/eventPayloadCodec.js', 211);
      const parse = frame('parseStringArray', 'file:///r/node_modules/pg-types/lib/textParsers.js', 69);
      const profile = {
        head: {
          callFrame: frame('(root)', ''),
          selfSize: 0,
          children: [
            { callFrame: iso, selfSize: 300, children: [] },
            {
              callFrame: frame('unpackObject', 'file:///r/services/event-store/dist/eventPayloadCodec.js', 233),
              selfSize: 100,
              children: [{ callFrame: iso, selfSize: 200, children: [] }],
            },
            { callFrame: parse, selfSize: 400, children: [] },
          ],
        },
        samples: [],
      };
      writeFileSync(file, JSON.stringify(profile));
      const summary = summariseHeapProfile(file);
      expect(summary.totalBytes).toBe(1000);
      expect(summary.functions).toEqual([
        { name: 'isoFromMillis services/event-store/dist/eventPayloadCodec.js:212', bytes: 500, percent: 50 },
        { name: 'parseStringArray pg-types/lib/textParsers.js:70', bytes: 400, percent: 40 },
        { name: 'unpackObject services/event-store/dist/eventPayloadCodec.js:234', bytes: 100, percent: 10 },
      ]);
      expect(summary.areas).toEqual([
        { name: 'services/event-store', bytes: 600, percent: 60 },
        { name: 'pg-types', bytes: 400, percent: 40 },
      ]);
      const text = formatHeapProfileSummary(summary, 1);
      expect(text).toContain('isoFromMillis');
      expect(text).not.toContain('unpackObject');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
