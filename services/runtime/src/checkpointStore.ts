import type { Pool } from 'pg';

/**
 * Where a subscriber keeps its checkpoint: the global position of the last event it has finished
 * with. Rows live in `subscription_checkpoints` (migration 004), one per subscriber name.
 */
export interface CheckpointStore {
  /** The saved position, or 0n (before the first event) when the name has none yet. */
  load(name: string): Promise<bigint>;
  /**
   * Moves the checkpoint forward to `position`; a position at or below the saved one changes
   * nothing. Enforced here, in the one statement that writes, so no caller (a relay that lost
   * its lease and finishes a late batch, two relays briefly overlapping) can move it backwards
   * and make billing receive a stretch of the ledger a second time.
   */
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
      // Compare-and-set in one statement: the row lock taken by the upsert orders concurrent
      // saves, and the WHERE keeps the greater position whatever their order.
      await pool.query(
        `INSERT INTO subscription_checkpoints AS c (name, position, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
         WHERE c.position < excluded.position`,
        [name, position.toString()],
      );
    },
  };
}
