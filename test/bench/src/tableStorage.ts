import type { Pool } from 'pg';

export interface TableStorage {
  readonly rows: number;
  /** pg_table_size: the heap with its TOAST, free-space and visibility maps. */
  readonly heapBytes: number;
  /** pg_indexes_size: every index of the table. */
  readonly indexBytes: number;
  /** pg_total_relation_size: heap, TOAST and every index (heapBytes + indexBytes). */
  readonly totalBytes: number;
  /** totalBytes / rows. */
  readonly bytesPerRow: number;
}

/** What a table of the pool's schema holds on disk, per row. `table` is the bench's own constant, never input. */
export async function tableStorage(pool: Pool, table: string): Promise<TableStorage> {
  const { rows } = await pool.query<{ rows: string; heap: string; indexes: string; total: string }>(
    `SELECT (SELECT count(*) FROM ${table}) AS rows, pg_table_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS indexes,
            pg_total_relation_size($1::regclass) AS total`,
    [table],
  );
  const row = rows[0]!;
  return storageOf(Number(row.rows), Number(row.heap), Number(row.indexes), Number(row.total));
}

export function storageOf(rows: number, heapBytes: number, indexBytes: number, totalBytes = heapBytes + indexBytes): TableStorage {
  return { rows, heapBytes, indexBytes, totalBytes, bytesPerRow: rows === 0 ? Number.NaN : totalBytes / rows };
}

/**
 * What the ledger costs on disk per ledger event: event_log, and append_markers, the row every
 * metered usage event writes in the same transaction as its charges and that is kept for ever
 * (migration 005). Left out before the night of 2026-12-07, the markers were some 52 bytes per ledger event
 * with two balances per customer that no figure showed.
 */
export interface LedgerStorage {
  /** event_log: its rows are the ledger events. */
  readonly events: TableStorage;
  /** append_markers: one row per marked append input (each usage event metered). */
  readonly markers: TableStorage;
  /** (event_log + append_markers, each heap + TOAST + indexes) / ledger events. */
  readonly bytesPerEvent: number;
  /** The markers' share of bytesPerEvent. */
  readonly markerBytesPerEvent: number;
}

export function ledgerStorageOf(events: TableStorage, markers: TableStorage): LedgerStorage {
  const perEvent = (bytes: number) => (events.rows === 0 ? Number.NaN : bytes / events.rows);
  return { events, markers, bytesPerEvent: perEvent(events.totalBytes + markers.totalBytes), markerBytesPerEvent: perEvent(markers.totalBytes) };
}

/** The ledger of the pool's schema, its append markers included. */
export async function ledgerStorage(pool: Pool): Promise<LedgerStorage> {
  return ledgerStorageOf(await tableStorage(pool, 'event_log'), await tableStorage(pool, 'append_markers'));
}
