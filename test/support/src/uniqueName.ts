import { randomBytes } from 'node:crypto';

/**
 * A name no other test run uses, valid both as a Kafka topic or group and as an unquoted
 * PostgreSQL identifier or Redis key prefix: lowercase letters, digits and underscores, starting
 * with a letter, well under PostgreSQL's 63-byte limit.
 */
export function uniqueName(prefix: string): string {
  const safe = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40);
  const start = /^[a-z]/.test(safe) ? safe : `t_${safe}`;
  return `${start}_${randomBytes(4).toString('hex')}`;
}
