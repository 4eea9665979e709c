import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppendRequest } from '@tally/event-store';
import type { Pool } from 'pg';
import { withClient } from '@tally/postgres';
import { from as copyFrom } from 'pg-copy-streams';

/** The columns of an events table as it was before the compact ledger (017), in COPY's order. */
export const EVENT_COLUMNS = 'position, event_id, stream_id, revision, type, data, metadata, recorded_at';

/** The stored columns of the compact ledger's event_log (migration 017), in COPY's order. */
export const EVENT_LOG_COLUMNS = 'position, event_id, revision, recorded_at, stream_no, shape_no, meta_absent, body, meta';

/**
 * A table laid out as `events` was before 017 (text stream name and type, jsonb payload and
 * metadata), with its key, unique indexes and checks when `indexed`: the durable ceiling writes
 * each usage message into one, as JSON.
 */
export async function createEventsShapedTable(pool: Pool, table: string, { indexed }: { indexed: boolean }): Promise<void> {
  const constraints = indexed
    ? `, PRIMARY KEY (position), UNIQUE (event_id), UNIQUE (stream_id, revision), CHECK (revision >= 0), CHECK (position > 0)`
    : '';
  await pool.query(
    `CREATE TABLE ${table} (position bigint NOT NULL, event_id uuid NOT NULL, stream_id text NOT NULL, revision bigint NOT NULL,
       type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL${constraints})`,
  );
}

/**
 * The rows event_log holds at positions from..to (inclusive), as COPY text: what the store wrote.
 * Read with a plain query: a COPY TO on a pool with a query timeout left pg's timer running (the
 * COPY stream has no callback to clear it), which kept the bench process alive for an hour.
 */
export async function storedRows(pool: Pool, from: bigint, to: bigint): Promise<Buffer> {
  const { rows } = await pool.query<(string | null)[]>({
    text: `SELECT position::text, event_id::text, revision::text, recorded_at::text, stream_no::text, shape_no::text, meta_absent::text, body, meta::text
           FROM event_log WHERE position BETWEEN $1 AND $2 ORDER BY position`,
    values: [from.toString(), to.toString()],
    rowMode: 'array',
  });
  const lines = rows.map((row) => row.map((value) => (value === null ? '\\N' : copyText(value))).join('\t'));
  return Buffer.from(`${lines.join('\n')}\n`);
}

/** COPY's text format: a backslash, tab, newline or carriage return in a value must be escaped. */
export function copyText(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (character) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[character]!);
}

/**
 * The rows an append of these requests would have written before 017, as COPY text: the same
 * ids, streams, revisions and JSON. Positions are numbered from `firstPosition` on.
 */
export function copyRowsOf(requests: readonly AppendRequest[], firstPosition: number, recordedAt: string): { text: Buffer; rows: number } {
  const lines: string[] = [];
  let position = firstPosition;
  for (const request of requests) {
    // Fresh streams only start at revision 0; these follow the revision each request expects.
    let revision = typeof request.expectedRevision === 'bigint' ? request.expectedRevision + 1n : 0n;
    for (const event of request.events) {
      lines.push(
        [
          String(position),
          event.id,
          copyText(request.streamId),
          String(revision),
          copyText(event.type),
          copyText(JSON.stringify(event.data)),
          copyText(JSON.stringify(event.metadata ?? {})),
          recordedAt,
        ].join('\t'),
      );
      position += 1;
      revision += 1n;
    }
  }
  return { text: Buffer.from(`${lines.join('\n')}\n`), rows: lines.length };
}

/** One COPY FROM STDIN (one transaction) of the chunks into `table`. */
export async function copyInto(pool: Pool, table: string, chunks: readonly Buffer[], columns = EVENT_COLUMNS): Promise<void> {
  await withClient(pool, (client) => pipeline(Readable.from(chunks), client.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN`))));
}
