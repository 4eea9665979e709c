import type { Pool } from 'pg';

/**
 * ANALYZE every table of the pool's schema (its search_path), after the bench loads data into it.
 * This machine's PostgreSQL runs with autovacuum off, so without it the planner would plan the
 * measured queries for empty tables; a user's server analyses tables as they fill. Only the
 * run's own schema: a database-wide ANALYZE would also walk the other schemas on the server.
 */
export async function analyzeSchema(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ name: string }>(
    "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = current_schema()",
  );
  for (const { name } of rows) await pool.query(`ANALYZE ${name}`);
}
