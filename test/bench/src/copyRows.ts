import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AppendRequest } from '@tally/event-store';
import type { Pool } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** The events table's columns, in the order COPY receives them. */
export const EVENT_COLUMNS = 'position, event_id, stream_id, revision, type, data, metadata, recorded_at';

/** COPY's text format: a backslash, tab, newline or carriage return in a value must be escaped. */
export function copyText(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (character) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[character]!);
}

/**
 * The rows an append of these requests writes, as COPY text: the same ids, streams, revisions
 * and JSON as the event store stores. Positions are numbered from `firstPosition` on.
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
export async function copyInto(pool: Pool, table: string, chunks: readonly Buffer[]): Promise<void> {
  const client = await pool.connect();
  try {
    await pipeline(Readable.from(chunks), client.query(copyFrom(`COPY ${table} (${EVENT_COLUMNS}) FROM STDIN`)));
  } finally {
    client.release();
  }
}
