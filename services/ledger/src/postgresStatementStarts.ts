import { balanceStreamId } from '@tally/domain';
import type { Pool } from 'pg';
import type { BalanceStateStore } from './balanceStateStore';
import { guarded } from './postgresBalanceStateStore';
import type { StatementStarts } from './statementStarts';

/**
 * Statement starts in `statement_boundaries` (migration 033), with the folds before them kept as
 * every other stored state is (`balance_snapshots`, through the state store): one encoding, one
 * version check. A boundary whose state is gone (another fold version) starts at the latest
 * stored state before it, or at the ledger's beginning, and the fold keeps it again.
 */
export function createPostgresStatementStarts(options: { readonly pool: Pool; readonly states: Pick<BalanceStateStore, 'load' | 'save'> }): StatementStarts {
  const { pool, states } = options;
  return {
    async before(balanceId, from) {
      const { rows } = await guarded(() =>
        pool.query<{ boundary: Date; revision: string }>({
          name: 'tally_ledger_statement_boundary',
          text: `SELECT boundary, revision FROM statement_boundaries WHERE stream_id = $1 AND boundary <= $2 ORDER BY boundary DESC LIMIT 1`,
          values: [balanceStreamId(balanceId), new Date(from)],
        }),
      );
      const revision = rows[0] === undefined ? undefined : BigInt(rows[0].revision);
      // Revision 0 opens the balance: there is nothing before it to skip.
      if (revision === undefined || revision === 0n) return undefined;
      const before = await states.load(balanceId, revision - 1n);
      return before === undefined ? undefined : { at: rows[0]!.boundary.getTime(), before };
    },

    async keep(balanceId, boundaries) {
      if (boundaries.length === 0) return;
      // Both idempotent, so a crash between them leaves nothing a later fold does not mend.
      await Promise.all([
        states.save(boundaries.map(({ before }) => ({ balanceId, loaded: before }))),
        guarded(() =>
          pool.query({
            name: 'tally_ledger_statement_boundaries_keep',
            text: `INSERT INTO statement_boundaries (stream_id, boundary, revision)
                   SELECT $1, b, r FROM ROWS FROM (unnest($2::timestamptz[]), unnest($3::bigint[])) AS t(b, r)
                   ON CONFLICT DO NOTHING`,
            values: [balanceStreamId(balanceId), boundaries.map(({ at }) => new Date(at)), boundaries.map(({ revision }) => revision.toString())],
          }),
        ),
      ]);
    },
  };
}
