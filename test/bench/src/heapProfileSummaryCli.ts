import { formatHeapProfileSummary, summariseHeapProfile } from './heapProfileSummary';

// node test/bench/dist/heapProfileSummaryCli.js <file.heapprofile> [N]
const [file, top] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node test/bench/dist/heapProfileSummaryCli.js <file.heapprofile> [N]\n');
  process.exit(2);
}
const limit = top === undefined ? 25 : Number(top);
process.stdout.write(`${formatHeapProfileSummary(summariseHeapProfile(file, limit), limit)}\n`);
