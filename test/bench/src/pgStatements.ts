import { quoteIdentifier } from '@tally/postgres';
import type { Pool } from 'pg';
import { formatCount, progress } from './progress';

/** One statement's work within a measured window, from pg_stat_statements. */
export interface StatementFigures {
  readonly calls: number;
  /** Execution time, waits for a core or a lock included: several backends add up to more than the window. */
  readonly totalMs: number;
  /** Blocks not found in shared_buffers (read from the OS page cache or the disk). */
  readonly blocksRead: number;
  readonly rows: number;
  /** The normalised text, whitespace collapsed. */
  readonly query: string;
}

/** The counters of one statement at one moment, keyed by pg_stat_statements' own identity. */
export type StatementCounters = ReadonlyMap<string, StatementFigures>;

export interface StatementWindow {
  /** What ran in the run's database since the window opened, most time first. */
  readonly close: () => Promise<StatementFigures[]>;
}

/** What `--pg-statements` found when the server cannot count statements: the reason, said once. */
export interface StatementsUnavailable {
  readonly unavailable: string;
}

// A statement is one row per user, query and level: with track = all, one text run both at the
// top and inside a function is counted in two rows (PostgreSQL 14's `toplevel`).
const SNAPSHOT_COLUMNS = `s.userid::text || '/' || s.queryid::text || '/' || s.toplevel::text AS key, s.calls::float8 AS calls, s.total_exec_time AS total_ms,
  s.shared_blks_read::float8 AS blocks_read, s.rows::float8 AS rows, s.query`;

/**
 * `--pg-statements`: where PostgreSQL's time goes while one timed part runs, by statement. The
 * counters are read before and after and subtracted, never reset: the server may be shared, and
 * a reset would wipe everyone's. Needs `shared_preload_libraries = 'pg_stat_statements'` (a
 * restart); `pg_stat_statements.track = all` also counts the statements inside append_events.
 * The extension's view is created in the run's schema when the database has none, so that it
 * goes with the schema.
 */
async function openStatementCounters(pool: Pool): Promise<{ readonly open: () => Promise<StatementWindow>; readonly track: string } | StatementsUnavailable> {
  try {
    const { rows: existing } = await pool.query<{ schema: string }>(
      "SELECT n.nspname AS schema FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
    );
    let schema = existing[0]?.schema;
    if (schema === undefined) {
      const { rows } = await pool.query<{ schema: string }>('SELECT current_schema() AS schema');
      schema = rows[0]!.schema;
      await pool.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA ${quoteIdentifier(schema)}`);
    }
    const view = `${quoteIdentifier(schema)}.pg_stat_statements`;
    const snapshot = async (): Promise<StatementCounters> => {
      const { rows } = await pool.query<{ key: string; calls: number; total_ms: number; blocks_read: number; rows: number; query: string }>(
        `SELECT ${SNAPSHOT_COLUMNS} FROM ${view} AS s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return new Map(
        rows.map((row) => [row.key, { calls: row.calls, totalMs: row.total_ms, blocksRead: row.blocks_read, rows: row.rows, query: row.query.replace(/\s+/g, ' ').trim() }]),
      );
    };
    // Reading once here turns a server without the library loaded into a reason, not a failed run.
    await snapshot();
    const { rows: track } = await pool.query<{ track: string }>("SELECT current_setting('pg_stat_statements.track') AS track");
    return {
      track: track[0]!.track,
      open: async () => {
        const before = await snapshot();
        return { close: async () => statementsBetween(before, await snapshot()) };
      },
    };
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
}

const countersOf = new WeakMap<Pool, ReturnType<typeof openStatementCounters>>();

/**
 * A window over the statements of the run's database for one timed part (`what`, for the progress
 * line), or undefined when the server cannot count them: the reason is said once per run, and the
 * bench goes on without.
 */
export async function openStatementWindow(pool: Pool, what: string): Promise<StatementWindow | undefined> {
  let counters = countersOf.get(pool);
  if (counters === undefined) {
    counters = openStatementCounters(pool);
    countersOf.set(pool, counters);
    const opened = await counters;
    if ('unavailable' in opened) progress(`--pg-statements: not counted (${opened.unavailable}); see docs/benchmarks.md`);
    else if (opened.track !== 'all') progress(`--pg-statements: pg_stat_statements.track is ${opened.track}: statements inside append_events are not counted`);
  }
  const opened = await counters;
  if ('unavailable' in opened) return undefined;
  progress(`--pg-statements: counting the statements of ${what}`);
  return opened.open();
}

/** Each statement's counters after less before; those that did not run in between are left out. */
export function statementsBetween(before: StatementCounters, after: StatementCounters): StatementFigures[] {
  const ran: StatementFigures[] = [];
  for (const [key, now] of after) {
    const then = before.get(key);
    const calls = now.calls - (then?.calls ?? 0);
    if (calls <= 0) continue;
    ran.push({
      calls,
      totalMs: now.totalMs - (then?.totalMs ?? 0),
      blocksRead: now.blocksRead - (then?.blocksRead ?? 0),
      rows: now.rows - (then?.rows ?? 0),
      query: now.query,
    });
  }
  return ran.sort((a, b) => b.totalMs - a.totalMs);
}

/** The first `top` statements as a markdown table, each query cut to `width` characters. */
export function formatStatementTable(statements: readonly StatementFigures[], top = 15, width = 110): string {
  const lines = ['| calls | ms | ms per call | blocks read per call | rows | statement |', '| ---: | ---: | ---: | ---: | ---: | --- |'];
  for (const s of statements.slice(0, top)) {
    const query = s.query.length > width ? `${s.query.slice(0, width - 1)}…` : s.query;
    lines.push(
      `| ${formatCount(s.calls)} | ${formatCount(s.totalMs)} | ${(s.totalMs / s.calls).toFixed(2)} | ${(s.blocksRead / s.calls).toFixed(1)} | ${formatCount(s.rows)} | \`${query.replace(/\|/g, '\\|').replace(/`/g, "'")}\` |`,
    );
  }
  if (statements.length > top) lines.push(`| | | | | | and ${statements.length - top} more statements |`);
  return lines.join('\n');
}
