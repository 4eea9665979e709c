import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Without TALLY_API_KEYS the main job still refuses anonymous calls: it makes one key, keeps it
 * in the stack's folder (mode 0600) so it survives restarts, and the caller prints it.
 */
export function loadOrCreateLocalApiKey(home: string): { key: string; file: string; created: boolean } {
  const file = path.join(home, 'api-key');
  try {
    const key = readFileSync(file, 'utf8').trim();
    if (key.length >= 16) return { key, file, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(home, { recursive: true });
  const key = `tally_local_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, file, created: true };
}
