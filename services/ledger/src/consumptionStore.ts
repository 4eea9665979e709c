import type { Pool } from 'pg';
import { guarded } from './postgresBalanceSnapshotStore';

export type ConsumptionBucketSize = 'hour' | 'day';

/** Credits consumed on one balance in one bucket by one usage event name. */
export interface ConsumptionBucket {
  /** The bucket's start (UTC). */
  readonly start: Date;
  /** The usage event's name; null for credits retained by hand. */
  readonly event: string | null;
  /** Exact micro-credits. */
  readonly credits: bigint;
  readonly entries: number;
}

export interface ConsumptionQuery {
  readonly from: Date;
  /** Exclusive. */
  readonly to: Date;
  readonly bucket: ConsumptionBucketSize;
}

/** Consumption over time, read from its projection (never by folding the stream per request). */
export interface ConsumptionStore {
  consumption(balanceId: string, query: ConsumptionQuery): Promise<ConsumptionBucket[]>;
}

/**
 * Reads `consumption_buckets` (migration 014), which the event store's trigger keeps per hour in
 * the same statement as the CreditConsumed events; days are summed from their hours here (UTC
 * days). Sums are numeric micro-credits in PostgreSQL and come back as text, so nothing rounds.
 */
export function createPostgresConsumptionStore(options: { readonly pool: Pool }): ConsumptionStore {
  const { pool } = options;
  return {
    consumption: (balanceId, { from, to, bucket }) =>
      guarded(async () => {
        const { rows } = await pool.query<{ start: Date; event: string; credits: string; entries: string }>({
          name: 'tally_ledger_consumption',
          text: `SELECT date_trunc($4, bucket_start, 'UTC') AS start, event,
                        trunc(sum(micro_credits))::text AS credits, sum(entries)::text AS entries
                 FROM consumption_buckets
                 WHERE balance_id = $1 AND bucket_start >= date_trunc($4, $2::timestamptz, 'UTC') AND bucket_start < $3
                 GROUP BY 1, 2 ORDER BY 1, 2`,
          values: [balanceId, from, to, bucket],
        });
        return rows.map((row) => ({
          start: row.start,
          event: row.event === '' ? null : row.event,
          credits: BigInt(row.credits),
          entries: Number(row.entries),
        }));
      }),
  };
}
