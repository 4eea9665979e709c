import { formatCpuProfileSummary, summariseCpuProfile } from './cpuProfileSummary';

// node test/bench/dist/cpuProfileSummaryCli.js <file.cpuprofile> [top N]: where a profiled process spent its time.
const [file, top] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node test/bench/dist/cpuProfileSummaryCli.js <file.cpuprofile> [top N]\n');
  process.exit(2);
}
process.stdout.write(`${formatCpuProfileSummary(summariseCpuProfile(file, Number(top ?? 25)))}\n`);
