/**
 * The local API key and session secret kept in the stack's folder: made once, and one for every
 * process, even when two main jobs (or a main job and `tally api-keys`) start together.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOrCreateLocalApiKey, loadOrCreateLocalSessionSecret, readLocalApiKey } from './localApiKey';

// mkdirSync runs between the read that finds no key and the write of a new one: where a test
// lets another process act, as a second main job starting at the same moment would.
jest.mock('node:fs', () => {
  const actual = jest.requireActual<typeof import('node:fs')>('node:fs');
  return { ...actual, mkdirSync: jest.fn(actual.mkdirSync) };
});
const mkdirSync = fs.mkdirSync as jest.MockedFunction<typeof fs.mkdirSync>;
const RIVAL_KEY = `tally_local_${'r'.repeat(43)}`;

describe('the local API key', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(tmpdir(), 'tally-local-key-'));
  });
  afterEach(() => {
    mkdirSync.mockImplementation(jest.requireActual<typeof import('node:fs')>('node:fs').mkdirSync);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('is made once, kept with mode 0600, and read back by every later start', () => {
    const made = loadOrCreateLocalApiKey(home);
    expect(made).toMatchObject({ created: true, file: path.join(home, 'api-key') });
    expect(made.key).toMatch(/^tally_local_[\w-]{43}$/);
    expect(fs.statSync(made.file).mode & 0o777).toBe(0o600);
    expect(loadOrCreateLocalApiKey(home)).toEqual({ ...made, created: false });
    expect(readLocalApiKey(home)).toBe(made.key);
  });

  it("takes the key another process wrote after this one found none, and keeps it", () => {
    const file = path.join(home, 'api-key');
    mkdirSync.mockImplementationOnce((...args) => {
      const made = jest.requireActual<typeof import('node:fs')>('node:fs').mkdirSync(...args);
      fs.writeFileSync(file, `${RIVAL_KEY}\n`, { mode: 0o600 });
      return made;
    });
    expect(loadOrCreateLocalApiKey(home)).toEqual({ key: RIVAL_KEY, file, created: false });
    expect(fs.readFileSync(file, 'utf8')).toBe(`${RIVAL_KEY}\n`);
  });

  it('waits for the key another process has created the file for but not yet written', async () => {
    const file = path.join(home, 'api-key');
    let rival: ReturnType<typeof spawn> | undefined;
    mkdirSync.mockImplementationOnce((...args) => {
      const made = jest.requireActual<typeof import('node:fs')>('node:fs').mkdirSync(...args);
      fs.writeFileSync(file, '', { mode: 0o600 });
      // The rival writes its key a moment later, from a process of its own, while this one waits.
      rival = spawn('sh', ['-c', `sleep 0.2; printf '%s\\n' '${RIVAL_KEY}' >>'${file}'`]);
      return made;
    });
    expect(loadOrCreateLocalApiKey(home)).toEqual({ key: RIVAL_KEY, file, created: false });
    if (rival?.exitCode === null) await new Promise((resolve) => rival!.once('exit', resolve));
  });

  it('replaces a file too short to hold a key once nothing writes to it', () => {
    const file = path.join(home, 'api-key');
    fs.writeFileSync(file, 'short\n');
    const made = loadOrCreateLocalApiKey(home);
    expect(made).toMatchObject({ created: true, file });
    expect(made.key).toMatch(/^tally_local_/);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${made.key}\n`);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps the session secret the same way, in a file of its own', () => {
    const secret = loadOrCreateLocalSessionSecret(home);
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(loadOrCreateLocalSessionSecret(home)).toBe(secret);
    expect(fs.readFileSync(path.join(home, 'session-secret'), 'utf8')).toBe(`${secret}\n`);
  });
});
