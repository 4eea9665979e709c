// Prints `N passed, N failed` summed over jest --json result files: the closing line CI reads,
// which tells a run that executed no test apart from a green one. A missing file, one that cannot
// be read (a jest stopped while writing it), or a suite that failed to run, counts as a failure.
const fs = require('node:fs');

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  if (!fs.existsSync(file)) {
    console.log(`missing jest results: ${file}`);
    failed += 1;
    continue;
  }
  let results;
  try {
    results = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (![results.numPassedTests, results.numFailedTests, results.numRuntimeErrorTestSuites].every(Number.isInteger)) throw new Error('no test counts in it');
  } catch (error) {
    console.log(`unreadable jest results: ${file} (${error.message})`);
    failed += 1;
    continue;
  }
  if (results.numRuntimeErrorTestSuites > 0) console.log(`${results.numRuntimeErrorTestSuites} test suite(s) failed to run`);
  passed += results.numPassedTests;
  failed += results.numFailedTests + results.numRuntimeErrorTestSuites;
}
console.log(`${passed} passed, ${failed} failed`);
