import type { Pool } from 'pg';

/**
 * Where a subscriber keeps its checkpoint: the global position of the last event it has finished
 * with. Rows live in `subscription_checkpoints` (migration 004), one per subscriber name.
 */
export interface CheckpointStore {
  /** The saved position, or 0n (before the first event) when the name has none yet. */
  load(name: string): Promise<bigint>;
  save(name: string, position: bigint): Promise<void>;
}

export function createPostgresCheckpointStore(pool: Pool): CheckpointStore {
  return {
    async load(name) {
      const { rows } = await pool.query<{ position: string }>('SELECT position FROM subscription_checkpoints WHERE name = $1', [
        name,
      ]);
      return rows[0] === undefined ? 0n : BigInt(rows[0].position);
    },

    async save(name, position) {
      await pool.query(
        `INSERT INTO subscription_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
        [name, position.toString()],
      );
    },
  };
}
