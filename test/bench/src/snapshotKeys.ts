import type { Redis } from 'ioredis';

/**
 * The balance projection's Redis layout (projections/src/keySpace.ts, which the package does not
 * export): `<prefix>:active` names the generation readers use, and each balance's snapshot is
 * the hash `<prefix>:<generation>:balance:<balance id>`, and the generation's checkpoint moves with them. The bench reads the hashes directly where
 * going through the read model would cost more than what it measures: the freshness poll, and
 * redis-benchmark's ceiling.
 */
export async function activeGeneration(redis: Redis, keyPrefix: string): Promise<string> {
  const generation = await redis.get(`${keyPrefix}:active`);
  if (generation === null) throw new Error(`no active projection generation under ${keyPrefix}`);
  return generation;
}

export function balanceSnapshotKey(keyPrefix: string, generation: string, balanceId: string): string {
  return `${keyPrefix}:${generation}:balance:${balanceId}`;
}

/** `<prefix>:<generation>:checkpoint`: the position up to which the generation's snapshots are written. */
export function checkpointKey(keyPrefix: string, generation: string): string {
  return `${keyPrefix}:${generation}:checkpoint`;
}
