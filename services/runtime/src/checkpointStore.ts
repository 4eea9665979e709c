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

/**
 * Moves a checkpoint back to `position`, for an operator who wants a processor to hand a stretch
 * of the log over again (the ledger relay's `tally relay-rewind`); answers the position it had.
 * Apart from CheckpointStore on purpose: a processor only ever moves its checkpoint forward. The
 * caller holds the processor's lease, so no leader saves meanwhile; but a deposed holder still
 * running (one whose lease lapsed, which goes on saving a handled batch's checkpoint for up to 2 s
 * of retries after it stops, SAVE_AFTER_STOP_MS) can save after the rewind, and its greater
 * position undoes it. Rewind only with every process of that role stopped, not merely without
 * the lease, or read the checkpoint again afterwards (`tally processors`) and rewind again if it
 * moved forward. A position at or above the saved one changes nothing.
 */
export async function rewindCheckpoint(pool: Pool, name: string, position: bigint): Promise<bigint> {
  const { rows } = await pool.query<{ previous: string }>(
    `UPDATE subscription_checkpoints c SET position = $2, updated_at = now()
       FROM (SELECT position FROM subscription_checkpoints WHERE name = $1 FOR UPDATE) AS old
      WHERE c.name = $1 AND old.position > $2
      RETURNING old.position AS previous`,
    [name, position.toString()],
  );
  return rows[0] === undefined ? createPostgresCheckpointStore(pool).load(name) : BigInt(rows[0].previous);
}

/** A checkpoint as an operator lists it. */
export interface SavedCheckpoint {
  readonly name: string;
  readonly position: bigint;
  /** When its processor last moved it. */
  readonly updatedAt: Date;
}

/** Every checkpoint saved in the pool's schema, by name: each processor that has saved once (`tally processors`). */
export async function readCheckpoints(pool: Pool): Promise<SavedCheckpoint[]> {
  const { rows } = await pool.query<{ name: string; position: string; updated_at: Date }>('SELECT name, position, updated_at FROM subscription_checkpoints ORDER BY name');
  return rows.map((row) => ({ name: row.name, position: BigInt(row.position), updatedAt: row.updated_at }));
}
