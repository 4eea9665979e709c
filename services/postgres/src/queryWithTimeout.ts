import type { ClientBase, QueryConfig, QueryResult, QueryResultRow } from 'pg';

/**
 * One query with its own client-side bound (pg's per-query `query_timeout`, which pg honours but
 * its type definitions leave out): after `timeoutMs` without an answer the query fails with
 * "Query read timeout", whatever the connection is doing.
 */
export function queryWithTimeout<Row extends QueryResultRow = QueryResultRow>(
  client: ClientBase,
  text: string,
  values: readonly unknown[] | undefined,
  timeoutMs: number,
): Promise<QueryResult<Row>> {
  const config: QueryConfig & { query_timeout: number } = { text, values: values === undefined ? undefined : [...values], query_timeout: timeoutMs };
  return client.query<Row>(config);
}
