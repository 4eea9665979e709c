import { randomBytes } from 'node:crypto';
import type { ApiKey } from '@tally/api';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where in `home` the local key is kept, and the shortest key read back from it. */
const API_KEY_FILE = 'api-key';
const API_KEY_MIN_LENGTH = 16;

/**
 * Without TALLY_API_KEYS the main job still refuses anonymous calls: it makes one key, keeps it
 * in the stack's folder (mode 0600) so it survives restarts, and the caller prints it.
 */
export function loadOrCreateLocalApiKey(home: string): { key: string; file: string; created: boolean } {
  return loadOrCreateLocalSecret(home, API_KEY_FILE, 'tally_local_', API_KEY_MIN_LENGTH);
}

/** The local key, if the main job has made one; nothing is created (for `tally api-keys`). */
export function readLocalApiKey(home: string): string | undefined {
  return readLocalSecret(path.join(home, API_KEY_FILE), API_KEY_MIN_LENGTH);
}

/** How the main job configures its local key: an admin key named `local`. */
export function localApiKeyEntry(key: string): ApiKey {
  return { key, scopes: ['admin'], name: 'local' };
}

/**
 * Without TALLY_SESSION_SECRET, the secret that signs console sessions and portal links is kept
 * the same way, so that sessions and links outlive a restart of the local main job.
 */
export function loadOrCreateLocalSessionSecret(home: string): string {
  return loadOrCreateLocalSecret(home, 'session-secret', '', 32).key;
}

/** How long a file another process has created may stay without its key before it counts as broken. */
const RIVAL_WRITE_WAIT_MS = 1000;

function loadOrCreateLocalSecret(home: string, name: string, prefix: string, minLength: number): { key: string; file: string; created: boolean } {
  const file = path.join(home, name);
  const existing = readLocalSecret(file, minLength);
  if (existing !== undefined) return { key: existing, file, created: false };
  mkdirSync(home, { recursive: true });
  const key = `${prefix}${randomBytes(32).toString('base64url')}`;
  // 'wx': of two processes starting together, the first to create the file makes the key and the
  // other reads it back, rather than each writing (and using) its own.
  try {
    writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return { key, file, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // Created but maybe not yet written: its key follows within moments.
  const deadline = Date.now() + RIVAL_WRITE_WAIT_MS;
  for (;;) {
    const written = readLocalSecret(file, minLength);
    if (written !== undefined) return { key: written, file, created: false };
    if (Date.now() >= deadline) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  // Still no key: a file left broken (emptied, cut short), replaced whole, never seen half written.
  const replacement = `${file}.${process.pid}.tmp`;
  writeFileSync(replacement, `${key}\n`, { mode: 0o600 });
  renameSync(replacement, file);
  return { key, file, created: true };
}

function readLocalSecret(file: string, minLength: number): string | undefined {
  try {
    const key = readFileSync(file, 'utf8').trim();
    return key.length >= minLength ? key : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return undefined;
  }
}
