import { balanceStreamId, type Micros } from '@tally/domain';
import type { Pool } from 'pg';
import type { BalanceStateStore } from './balanceStateStore';
import { guarded } from './postgresBalanceStateStore';
import { STATEMENT_CONSUMPTION_SOURCES, STATEMENT_TOP_UP_SOURCES, type StatementStarts, type StatementTotals } from './statementStarts';

/** The stored form of StatementTotals: micro-credits as integer strings, never numbers. */
type EncodedTotals = { readonly [Part in keyof StatementTotals]: Readonly<Record<string, string>> };

const INTEGER = /^-?\d+$/;

const encodeTotals = (totals: StatementTotals): EncodedTotals => ({
  toppedUp: Object.fromEntries(STATEMENT_TOP_UP_SOURCES.map((source) => [source, totals.toppedUp[source].toString()])),
  consumed: Object.fromEntries(STATEMENT_CONSUMPTION_SOURCES.map((source) => [source, totals.consumed[source].toString()])),
});

/** Undefined for what no keep wrote: such a row is not used as a start. */
function decodeTotals(stored: unknown): StatementTotals | undefined {
  const { toppedUp, consumed } = (stored ?? {}) as Partial<EncodedTotals>;
  const sums = <K extends string>(sources: readonly K[], part: Readonly<Record<string, string>> | undefined): Record<K, Micros> | undefined => {
    if (part === undefined || !sources.every((source) => INTEGER.test(part[source] ?? ''))) return undefined;
    return Object.fromEntries(sources.map((source) => [source, BigInt(part[source]!)])) as Record<K, Micros>;
  };
  const added = sums(STATEMENT_TOP_UP_SOURCES, toppedUp);
  const taken = sums(STATEMENT_CONSUMPTION_SOURCES, consumed);
  return added === undefined || taken === undefined ? undefined : { toppedUp: added, consumed: taken };
}

/**
 * Statement starts in `statement_boundaries` (migrations 033 and 034), with the folds before them
 * kept as every other stored state is (`balance_snapshots`, through the state store): one
 * encoding, one version check. A start whose stored fold is gone (another fold version) or that
 * has no totals (kept before migration 034) is not used, and a statement that finds its instant
 * again keeps it whole.
 */
export function createPostgresStatementStarts(options: { readonly pool: Pool; readonly states: Pick<BalanceStateStore, 'load' | 'save'> }): StatementStarts {
  const { pool, states } = options;
  return {
    async before(balanceId, at) {
      const { rows } = await guarded(() =>
        pool.query<{ boundary: Date; revision: string; totals: unknown }>({
          name: 'tally_ledger_statement_boundary',
          text: `SELECT boundary, revision, totals FROM statement_boundaries
                 WHERE stream_id = $1 AND boundary <= $2 AND totals IS NOT NULL ORDER BY boundary DESC LIMIT 1`,
          values: [balanceStreamId(balanceId), new Date(at)],
        }),
      );
      const row = rows[0];
      const totals = row === undefined ? undefined : decodeTotals(row.totals);
      // Revision 0 opens the balance: there is nothing before it to skip.
      if (row === undefined || totals === undefined || row.revision === '0') return undefined;
      const revision = BigInt(row.revision);
      // The fold must end where the totals do: an older stored state would not match them.
      const before = await states.load(balanceId, revision - 1n);
      return before?.revision === revision - 1n ? { at: row.boundary.getTime(), before, totals } : undefined;
    },

    async keep(balanceId, found) {
      // One row an instant: the same instant is the same boundary, and one INSERT may not update a row twice.
      const boundaries = [...new Map(found.map((boundary) => [boundary.at, boundary])).values()];
      if (boundaries.length === 0) return;
      // Both idempotent, so a crash between them leaves nothing a later fold does not mend. A
      // row kept without totals (before migration 034, or by that release) gets them.
      await Promise.all([
        states.save(boundaries.map(({ before }) => ({ balanceId, loaded: before }))),
        guarded(() =>
          pool.query({
            name: 'tally_ledger_statement_boundaries_keep',
            text: `INSERT INTO statement_boundaries (stream_id, boundary, revision, totals)
                   SELECT $1, b, r, t::jsonb FROM ROWS FROM (unnest($2::timestamptz[]), unnest($3::bigint[]), json_array_elements($4::json)) AS x(b, r, t)
                   ON CONFLICT (stream_id, boundary) DO UPDATE SET totals = EXCLUDED.totals WHERE statement_boundaries.totals IS NULL`,
            values: [
              balanceStreamId(balanceId),
              boundaries.map(({ at }) => new Date(at)),
              boundaries.map(({ revision }) => revision.toString()),
              JSON.stringify(boundaries.map(({ totals }) => encodeTotals(totals))),
            ],
          }),
        ),
      ]);
    },
  };
}
