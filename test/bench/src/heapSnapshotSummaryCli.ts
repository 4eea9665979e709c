import { formatHeapSnapshotSummary, summariseHeapSnapshot } from './heapSnapshotSummary';

// node test/bench/dist/heapSnapshotSummaryCli.js <file.heapsnapshot> [N]
const [file, top] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node test/bench/dist/heapSnapshotSummaryCli.js <file.heapsnapshot> [N]\n');
  process.exit(2);
}
process.stdout.write(`${formatHeapSnapshotSummary(summariseHeapSnapshot(file), top === undefined ? 25 : Number(top))}\n`);
