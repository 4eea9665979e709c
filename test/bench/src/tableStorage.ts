import type { Pool } from 'pg';

export interface TableStorage {
  readonly rows: number;
  /** pg_table_size: the heap with its TOAST, free-space and visibility maps. */
  readonly heapBytes: number;
  /** pg_indexes_size: every index of the table. */
  readonly indexBytes: number;
  /** (heap + indexes) / rows. */
  readonly bytesPerRow: number;
}

/** What a table of the pool's schema holds on disk, per row. `table` is the bench's own constant, never input. */
export async function tableStorage(pool: Pool, table: string): Promise<TableStorage> {
  const { rows } = await pool.query<{ rows: string; heap: string; indexes: string }>(
    `SELECT (SELECT count(*) FROM ${table}) AS rows, pg_table_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS indexes`,
    [table],
  );
  const row = rows[0]!;
  return storageOf(Number(row.rows), Number(row.heap), Number(row.indexes));
}

export function storageOf(rows: number, heapBytes: number, indexBytes: number): TableStorage {
  return { rows, heapBytes, indexBytes, bytesPerRow: rows === 0 ? Number.NaN : (heapBytes + indexBytes) / rows };
}
