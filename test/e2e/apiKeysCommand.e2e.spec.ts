import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '..', '..', 'services', 'tally', 'dist', 'cli.js');
const idOf = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 12);

/** `tally api-keys` as an operator runs it: which keys the API accepts, by the id the ledger and logs name them by. */
describe('tally api-keys', () => {
  let home: string;

  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), 'tally-api-keys-'));
  });

  afterEach(() => rmSync(home, { recursive: true, force: true }));

  async function tally(env: Record<string, string | undefined>): Promise<string> {
    const { TALLY_API_KEYS: _unset, ...inherited } = process.env;
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'api-keys'], { env: { ...inherited, TALLY_HOME: home, ...env }, timeout: 30_000 });
    return stdout;
  }

  it('lists the configured keys by id, name and scopes, and never prints a key', async () => {
    const ops = 'k-ops-0123456789abcdef';
    const backend = 'k-backend-0123456789ab';
    const stdout = await tally({ TALLY_API_KEYS: `${ops}:admin:ops,${backend}:read+write` });
    expect(stdout.trimEnd().split('\n').map((line) => line.split(/\s+/))).toEqual([
      ['id', 'name', 'scopes'],
      [idOf(ops), 'ops', 'admin'],
      [idOf(backend), '-', 'read+write'],
    ]);
    expect(stdout).not.toContain(ops);
    expect(stdout).not.toContain(backend);
  });

  it('lists the local key the main job made when TALLY_API_KEYS is unset, and says when there is none', async () => {
    expect(await tally({})).toMatch(/^no API keys: TALLY_API_KEYS is unset/);
    const local = 'tally_local_0123456789abcdefghij';
    writeFileSync(path.join(home, 'api-key'), `${local}\n`);
    const stdout = await tally({});
    expect(stdout.trimEnd().split('\n')[1]!.split(/\s+/)).toEqual([idOf(local), 'local', 'admin']);
    expect(stdout).not.toContain(local);
  });
});
