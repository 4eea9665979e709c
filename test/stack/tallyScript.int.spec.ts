/**
 * scripts/tally.sh (`npm run tally`), which operators run beside a running main job: it checks
 * the Node.js version and builds the CLI's TypeScript, and nothing else: no Debian packages, no
 * npm install over a node_modules in use, and no build of the web console, whose build empties
 * services/web/dist under the API serving it. It runs in a copy of the scripts in a folder of its
 * own, with stubs for apt-get, npm, npx and tsc that record their calls and a CLI that prints its arguments.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
// What tally.sh runs now and ran before (ensure-deps.sh and what it sources), so a regression shows as calls to the stubs.
const COPIED = ['scripts/tally.sh', 'scripts/ensure-deps.sh', 'scripts/lib/common.sh', 'scripts/lib/env.sh', 'scripts/lib/node-version.js', 'package.json', 'package-lock.json'];

describe('npm run tally (scripts/tally.sh)', () => {
  let dir: string;
  const calls = () => (existsSync(path.join(dir, 'calls.log')) ? readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n') : []);

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tally-cli-script-'));
    for (const file of COPIED) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      copyFileSync(path.join(ROOT, file), path.join(dir, file));
    }
    mkdirSync(path.join(dir, 'bin'));
    for (const program of ['apt-get', 'npm', 'npx', 'chromium']) {
      writeFileSync(path.join(dir, 'bin', program), `#!/usr/bin/env bash\necho "${program} $*" >>"${path.join(dir, 'calls.log')}"\n`);
      chmodSync(path.join(dir, 'bin', program), 0o755);
    }
    // An installed and built checkout, with the console's assets in place.
    mkdirSync(path.join(dir, 'node_modules', '.bin'), { recursive: true });
    writeFileSync(path.join(dir, 'node_modules', '.package-lock.json'), '{}');
    writeFileSync(path.join(dir, 'node_modules', '.bin', 'tsc'), `#!/usr/bin/env bash\necho "tsc $*" >>"${path.join(dir, 'calls.log')}"\n`);
    chmodSync(path.join(dir, 'node_modules', '.bin', 'tsc'), 0o755);
    mkdirSync(path.join(dir, 'services', 'tally', 'dist'), { recursive: true });
    writeFileSync(path.join(dir, 'services', 'tally', 'dist', 'cli.js'), 'console.log(`cli ${process.argv.slice(2).join(" ")}`);\n');
    mkdirSync(path.join(dir, 'services', 'web', 'dist'), { recursive: true });
    writeFileSync(path.join(dir, 'services', 'web', 'dist', 'index.html'), '<!doctype html>');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the CLI after building only its TypeScript: no apt-get, no npm install, the console untouched', () => {
    const console = path.join(dir, 'services', 'web', 'dist');
    const before = statSync(console).mtimeMs;
    const result = spawnSync('bash', ['scripts/tally.sh', 'balance', 'acme'], {
      cwd: dir,
      env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, TALLY_HOME: path.join(dir, '.tally') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ code: result.status, stdout: result.stdout.trim() }).toEqual({ code: 0, stdout: 'cli balance acme' });
    expect(calls()).toEqual([`tsc -b ${path.join(dir, 'services', 'tally')}`]);
    expect(statSync(console).mtimeMs).toBe(before);
    expect(existsSync(path.join(console, 'index.html'))).toBe(true);
  });

  it('stops, with the reason, on a Node.js that cannot run Tally, before anything else', () => {
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ engines: { node: '>=99.0' } }));
    const result = spawnSync('bash', ['scripts/tally.sh', '--help'], {
      cwd: dir,
      env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Tally needs Node.js');
    expect(calls()).toEqual([]);
  });
});
