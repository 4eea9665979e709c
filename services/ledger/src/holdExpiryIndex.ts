import type { Pool } from 'pg';
import { guarded } from './postgresBalanceStateStore';

/** One change to the index: a hold placed (with its expiry) or freed (null). */
export interface HoldIndexChange {
  readonly holdId: string;
  readonly balanceId: string;
  /** null: the hold was captured, released or expired. */
  readonly expiresAt: Date | null;
}

/** Open holds by expiry (migration 016): what the expiry worker polls. */
export interface HoldExpiryIndex {
  /** Applies the net changes of a batch of ledger events; safe to apply again (a replayed batch). */
  apply(changes: readonly HoldIndexChange[]): Promise<void>;
  /** Holds whose expiry is at or before `now`, oldest first. */
  due(now: Date, limit: number): Promise<{ holdId: string; balanceId: string; expiresAt: Date }[]>;
  /** The earliest expiry at or before `now` (the hold waiting longest to be expired), or null. */
  oldestDue(now: Date): Promise<Date | null>;
}

export function createPostgresHoldExpiryIndex(pool: Pool): HoldExpiryIndex {
  return {
    apply: (changes) =>
      guarded(async () => {
        const placed = changes.filter((change) => change.expiresAt !== null);
        const freed = changes.filter((change) => change.expiresAt === null).map((change) => change.holdId);
        // Two statements, each idempotent: a hold id is placed once (its key makes it), so
        // DO NOTHING on a replay, and deleting what is gone changes nothing.
        if (placed.length > 0) {
          await pool.query(
            `INSERT INTO hold_expiries (hold_id, balance_id, expires_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ON CONFLICT (hold_id) DO NOTHING`,
            [placed.map((c) => c.holdId), placed.map((c) => c.balanceId), placed.map((c) => c.expiresAt!.toISOString())],
          );
        }
        if (freed.length > 0) await pool.query('DELETE FROM hold_expiries WHERE hold_id = ANY($1::text[])', [freed]);
      }),
    due: (now, limit) =>
      guarded(async () => {
        const { rows } = await pool.query<{ hold_id: string; balance_id: string; expires_at: Date }>(
          'SELECT hold_id, balance_id, expires_at FROM hold_expiries WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2',
          [now.toISOString(), limit],
        );
        return rows.map((row) => ({ holdId: row.hold_id, balanceId: row.balance_id, expiresAt: row.expires_at }));
      }),
    oldestDue: (now) =>
      guarded(async () => {
        // Read at every scrape, so it must stay cheap however many holds are open: min() over
        // hold_expiries_by_time is one index probe (PostgreSQL plans it as LIMIT 1 on the index).
        const { rows } = await pool.query<{ oldest: Date | null }>('SELECT min(expires_at) AS oldest FROM hold_expiries WHERE expires_at <= $1', [
          now.toISOString(),
        ]);
        return rows[0]?.oldest ?? null;
      }),
  };
}
