import { balanceStreamId, type FoldedBalance } from '@tally/domain';
import { EventStoreUnavailableError } from '@tally/event-store';
import { integerArrayLiteral, isTransientPgError, textArrayLiteral } from '@tally/postgres';
import { guardTransient } from '@tally/runtime';
import type { Pool } from 'pg';
import { BALANCE_STATE_VERSION, decodeBalanceState, encodeBalanceState, type BalanceStateStore } from './balanceStateStore';

/** Connection failures are the event store's database being unavailable: retriable, as for the stream reads beside them. */
export const guarded = guardTransient(isTransientPgError, (cause) => new EventStoreUnavailableError(cause));

/**
 * A batch's rows: stream ids, revisions and states, zipped by position (`ROWS FROM` pairs the
 * n-th element of each). json_array_elements hands each state back as the text it was written.
 */
const BATCH_ROWS = `ROWS FROM (unnest($2::text[]), unnest($3::bigint[]), json_array_elements($4::json)) AS t(s, r, j)`;

/** Folded states in the `balance_snapshots` table (migration 006), in the event store's schema. */
export function createPostgresBalanceStateStore(options: { readonly pool: Pool; readonly version?: string }): BalanceStateStore {
  const { pool } = options;
  const version = options.version ?? BALANCE_STATE_VERSION;
  return {
    load: (balanceId, atOrBefore) =>
      guarded(async () => {
        const { rows } = await pool.query<{ revision: string; state: unknown }>({
          name: 'tally_ledger_snapshot_load',
          text: `SELECT revision, state FROM balance_snapshots
                 WHERE stream_id = $1 AND version = $2 AND ($3::bigint IS NULL OR revision <= $3::bigint)
                 ORDER BY revision DESC LIMIT 1`,
          values: [balanceStreamId(balanceId), version, atOrBefore?.toString() ?? null],
        });
        const row = rows[0];
        return row === undefined ? undefined : { state: decodeBalanceState(row.state), revision: BigInt(row.revision) };
      }),

    loadLatest: (balanceIds) =>
      guarded(async () => {
        const found = new Map<string, FoldedBalance>();
        if (balanceIds.length === 0) return found;
        const balanceOf = new Map(balanceIds.map((balanceId) => [balanceStreamId(balanceId), balanceId]));
        const { rows } = await pool.query<{ stream_id: string; revision: string; state: unknown }>({
          name: 'tally_ledger_snapshot_load_latest',
          text: `SELECT DISTINCT ON (stream_id) stream_id, revision, state FROM balance_snapshots
                 WHERE stream_id = ANY ($1::text[]) AND version = $2
                 ORDER BY stream_id, revision DESC`,
          values: [textArrayLiteral([...balanceOf.keys()]), version],
        });
        for (const row of rows) found.set(balanceOf.get(row.stream_id)!, { state: decodeBalanceState(row.state), revision: BigInt(row.revision) });
        return found;
      }),

    save: (states, saveOptions) =>
      guarded(async () => {
        const open = states.filter(({ loaded }) => loaded.state.status === 'open');
        if (open.length === 0) return;
        const values = [
          version,
          // Array literals written once (arrayLiteral), not by pg element by element.
          textArrayLiteral(open.map(({ balanceId }) => balanceStreamId(balanceId))),
          integerArrayLiteral(open.map(({ loaded }) => loaded.revision.toString())),
          // The states as one JSON array, not JSON texts in a text[] literal, whose every quote
          // needs escaping: a save of 20,000 states allocated 113 MiB that way, 23 MiB this way
          // (docs/benchmarks.md, 2026-12-04, afternoon).
          JSON.stringify(open.map(({ loaded }) => encodeBalanceState(loaded.state as Extract<typeof loaded.state, { status: 'open' }>))),
        ];
        if (saveOptions?.replaceable !== true) {
          await pool.query({
            name: 'tally_ledger_snapshot_save',
            text: `INSERT INTO balance_snapshots (stream_id, version, revision, state)
                   SELECT s, $1, r, j FROM ${BATCH_ROWS}
                   ON CONFLICT DO NOTHING`,
            values,
          });
          return;
        }
        // One statement: the new rows in, the streams' older replaceable rows out (never a row a
        // replayed command answers from, which is not replaceable). Both parts see the same
        // snapshot and touch different revisions, so a stream is never left without the new row.
        await pool.query({
          name: 'tally_ledger_snapshot_save_replaceable',
          text: `WITH t AS (SELECT * FROM ${BATCH_ROWS}),
                 replaced AS (
                   DELETE FROM balance_snapshots AS b USING t
                   WHERE b.stream_id = t.s AND b.version = $1 AND b.revision < t.r AND b.replaceable
                 )
                 INSERT INTO balance_snapshots (stream_id, version, revision, state, replaceable)
                 SELECT s, $1, r, j, true FROM t
                 ON CONFLICT DO NOTHING`,
          values,
        });
      }),
  };
}
