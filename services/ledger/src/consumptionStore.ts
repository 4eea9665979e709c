import type { Pool } from 'pg';
import { CONSUMPTION_PROJECTION } from './consumptionProjector';
import { guarded } from './postgresBalanceStateStore';

export type ConsumptionBucketSize = 'hour' | 'day';

/** Credits consumed on one balance in one bucket by one usage event name. */
export interface ConsumptionBucket {
  /** The bucket's start (UTC). */
  readonly start: Date;
  /** The usage event's name; null for credits retained by hand. */
  readonly event: string | null;
  /** Exact micro-credits charged. */
  readonly credits: bigint;
  /** Of `credits`, the micro-credits refunds gave back (whenever they were made): net is the difference. */
  readonly refunded: bigint;
  readonly entries: number;
}

export interface ConsumptionQuery {
  readonly from: Date;
  /** Exclusive. */
  readonly to: Date;
  readonly bucket: ConsumptionBucketSize;
}

export interface Consumption {
  /** The global event store position the buckets reflect: every event up to it, none after. */
  readonly position: bigint;
  readonly buckets: ConsumptionBucket[];
}

/** Consumption over time, read from its projection (never by folding the stream per request). */
export interface ConsumptionStore {
  consumption(balanceId: string, query: ConsumptionQuery): Promise<Consumption>;
}

/**
 * Reads `consumption_buckets` (migration 014), which the consumption projector keeps per hour
 * (consumptionProjector.ts); days are summed from their hours here (UTC days). Sums are numeric
 * micro-credits in PostgreSQL and come back as text, so nothing rounds. The projector's checkpoint
 * is read in the same statement, so the position and the sums are of one snapshot (the projector
 * moves both in one transaction).
 */
export function createPostgresConsumptionStore(options: { readonly pool: Pool }): ConsumptionStore {
  const { pool } = options;
  return {
    consumption: (balanceId, { from, to, bucket }) =>
      guarded(async () => {
        const { rows } = await pool.query<{ position: string; start: Date | null; event: string | null; credits: string | null; refunded: string | null; entries: string | null }>({
          name: 'tally_ledger_consumption',
          // One row with nulls when there are no buckets, so the position comes back regardless.
          text: `SELECT coalesce((SELECT position FROM subscription_checkpoints WHERE name = $5), 0)::text AS position, s.*
                 FROM (SELECT 1) one LEFT JOIN (
                   SELECT date_trunc($4, bucket_start, 'UTC') AS start, event,
                          trunc(sum(micro_credits))::text AS credits, trunc(sum(refunded_micro_credits))::text AS refunded, sum(entries)::text AS entries
                   FROM consumption_buckets
                   WHERE balance_id = $1 AND bucket_start >= date_trunc($4, $2::timestamptz, 'UTC') AND bucket_start < $3
                   GROUP BY 1, 2
                 ) s ON true
                 ORDER BY s.start, s.event`,
          values: [balanceId, from, to, bucket, CONSUMPTION_PROJECTION],
        });
        return {
          position: BigInt(rows[0]?.position ?? '0'),
          buckets: rows.flatMap((row) =>
            row.start === null || row.credits === null
              ? []
              : [{ start: row.start, event: row.event === '' ? null : row.event, credits: BigInt(row.credits), refunded: BigInt(row.refunded ?? '0'), entries: Number(row.entries) }],
          ),
        };
      }),
  };
}
