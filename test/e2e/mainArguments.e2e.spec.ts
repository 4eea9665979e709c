import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TALLY_MAIN, uniqueName } from '@tally/test-support';

jest.setTimeout(60_000);

/** Were main to start, it would meet nothing here (port 1) and fail with 1, never answer 0 or 2. */
const NOWHERE = {
  TALLY_ROLES: 'consumer',
  TALLY_CONSUMER_GROUP: uniqueName('main_arguments'),
  TALLY_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/tally',
  TALLY_DATABASE_CONNECT_TIMEOUT_MS: '1000',
  TALLY_KAFKA_BROKERS: '127.0.0.1:1',
  TALLY_API_PORT: '0',
};

async function runMain(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [TALLY_MAIN, ...args], { env: { ...process.env, ...NOWHERE }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout: string; stderr: string };
    return { code: failed.code ?? -1, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The built main job's command line: it takes none, and says so before connecting to anything. */
describe('node main.js with arguments', () => {
  it.each([['--help'], ['-h']])('answers %s with what it runs and how it is configured, and exits 0', async (flag) => {
    const help = await runMain([flag]);
    expect(help).toEqual({ code: 0, stdout: expect.stringMatching(/^usage: node services\/tally\/dist\/main\.js \[--help\]\n/), stderr: '' });
    expect(help.stdout).toContain('TALLY_ROLES');
    expect(help.stdout).toContain('README.md');
  });

  it.each([[['consumer']], [['--roles=api']], [['--port', '9090']]])('refuses %j with 2 and the usage, starting nothing', async (args) => {
    const refused = await runMain(args);
    expect(refused).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(new RegExp(`^tally: main takes no arguments, got ${args.join(' ')}\\n\\nusage: `)) });
  });

  it('starts, and fails on the unreachable database, without arguments (the control)', async () => {
    const started = await runMain([]);
    expect(started.code).toBe(1);
    expect(started.stdout).toContain('"starting Tally"');
  });
});
