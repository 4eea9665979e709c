/**
 * `.ci/run`'s closing line, `N passed, N failed`, which CI reads: it counts this run's results
 * only, and is printed however the run ends (a step that fails, hangs past its deadline, or leaves
 * a results file jest never finished). Each test runs copies of the scripts in a folder of its own,
 * with stub steps (an `npm` on the PATH, an ensure-deps.sh), so nothing of the real suite runs.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPTS = ['.ci/run', 'scripts/test.sh', 'scripts/test-faults.sh', 'scripts/lib/env.sh', 'scripts/lib/jest-summary.js'];

/** What jest --json writes, with only the counts the summary reads. */
const results = (passed: number, failed: number) => JSON.stringify({ numPassedTests: passed, numFailedTests: failed, numRuntimeErrorTestSuites: 0 });

describe('the closing line of CI', () => {
  let dir: string;
  let home: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tally-ci-'));
    home = path.join(dir, '.tally');
    mkdirSync(home);
    mkdirSync(path.join(dir, 'bin'));
    for (const file of SCRIPTS) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      copyFileSync(path.join(ROOT, file), path.join(dir, file));
    }
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** An executable stub at `relative` in the test's folder. */
  function stub(relative: string, body: string) {
    writeFileSync(path.join(dir, relative), `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(path.join(dir, relative), 0o755);
  }

  function run(command: string[], env: Readonly<Record<string, string>> = {}) {
    const startedAt = Date.now();
    const result = spawnSync(command[0]!, command.slice(1), {
      cwd: dir,
      env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, TALLY_HOME: home, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const lines = result.stdout.trimEnd().split('\n');
    return { code: result.status, lastLine: lines.at(-1), stdout: result.stdout, stderr: result.stderr, seconds: (Date.now() - startedAt) / 1000 };
  }

  const summary = (...files: string[]) => run(['node', 'scripts/lib/jest-summary.js', ...files.map((file) => path.join(home, file))]);

  it('counts a results file jest did not finish writing as a failure, and says so', () => {
    writeFileSync(path.join(home, 'truncated.json'), results(12, 0).slice(0, 20));
    writeFileSync(path.join(home, 'whole.json'), results(7, 1));
    expect(summary('truncated.json')).toMatchObject({ code: 0, lastLine: '0 passed, 1 failed' });
    const both = summary('whole.json', 'truncated.json');
    expect(both.lastLine).toBe('7 passed, 2 failed');
    expect(both.stdout).toContain(`unreadable jest results: ${path.join(home, 'truncated.json')}`);
  });

  it("never counts a previous run's results: steps that fail before jest runs leave none", () => {
    writeFileSync(path.join(home, 'jest-results.json'), results(900, 0));
    writeFileSync(path.join(home, 'jest-faults-results.json'), results(90, 0));
    stub('bin/npm', 'exit 1');
    const ci = run(['bash', '.ci/run']);
    expect(ci.lastLine).toBe('0 passed, 2 failed');
    expect(ci.code).toBe(1);
  });

  it('ends a step that outlives TALLY_CI_STEP_TIMEOUT and still prints the closing line', () => {
    writeFileSync(path.join(home, 'jest-results.json'), results(900, 0));
    stub('bin/npm', 'sleep 30');
    const ci = run(['bash', '.ci/run'], { TALLY_CI_STEP_TIMEOUT: '1s' });
    expect(ci.seconds).toBeLessThan(15);
    expect(ci.lastLine).toBe('0 passed, 2 failed');
    expect(ci.code).not.toBe(0);
    expect(ci.stderr).toContain('did not finish within 1s');
  });

  it.each([
    ['scripts/test.sh', 'jest-results.json'],
    ['scripts/test-faults.sh', 'jest-faults-results.json'],
  ])('%s removes its results file before anything can fail', (script, file) => {
    writeFileSync(path.join(home, file), results(900, 0));
    stub('scripts/ensure-deps.sh', 'exit 1');
    expect(run(['bash', script]).code).toBe(1);
    expect(existsSync(path.join(home, file))).toBe(false);
  });
});
