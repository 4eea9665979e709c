import { encodePayload, type EventToAppend } from '@tally/event-store';
import type { Pool } from 'pg';
import { copyInto, copyText, EVENT_LOG_COLUMNS } from './copyRows';
import { decideAppends, usageCommands, type UsageInstant, type WorkloadBalance } from './ledgerWorkload';
import { formatCount, progress } from './progress';

const COPY_CHUNK = 50_000;

/**
 * Recorded when its usage happened, as though metered at once: every event a usage command
 * decides carries the command's instant.
 */
function recordedAt(event: EventToAppend): string {
  const { occurredAt } = event.data;
  if (typeof occurredAt !== 'string') throw new Error(`a ${event.type} without occurredAt`);
  return occurredAt;
}

/**
 * Writes `count` usage deductions round-robin over already opened balances straight into the
 * compact ledger by COPY, as the event store stores them: payloads encoded by the store's own
 * codec, shapes registered and metadata reduced against each stream's header by the SQL of
 * migration 017, positions after the head and revisions in order. Then moves the streams' rows
 * and the position sequence past them and analyses. Millions of events of history in minutes,
 * not the hours appends would take; the domain's decider decides every event.
 */
export async function copyUsageHistory(pool: Pool, balances: readonly WorkloadBalance[], count: number, idPrefix: string, at: UsageInstant): Promise<void> {
  const streams = new Map<string, { streamNo: string }>();
  const shapeNos = new Map<string, number>();
  const { rows: headRows } = await pool.query<{ head: string }>('SELECT coalesce(max(position), 0) AS head FROM event_log');
  let position = BigInt(headRows[0]!.head) + 1n;
  for (let from = 0; from < count; from += COPY_CHUNK) {
    const requests = decideAppends(usageCommands(balances, from, Math.min(COPY_CHUNK, count - from), idPrefix, at));
    const unknownStreams = requests.map((r) => r.streamId).filter((id) => !streams.has(id));
    if (unknownStreams.length > 0) {
      const { rows } = await pool.query<{ stream_id: string; stream_no: string }>('SELECT stream_id, stream_no FROM streams WHERE stream_id = ANY ($1::text[])', [unknownStreams]);
      for (const row of rows) streams.set(row.stream_id, { streamNo: row.stream_no });
    }
    // The metadata of one stream's usage events differ at most per stream: reduced in one query.
    const metaKeys = new Map<string, { streamId: string; metadata: string }>();
    for (const request of requests) {
      for (const event of request.events) {
        const metadata = JSON.stringify(event.metadata ?? {});
        metaKeys.set(`${request.streamId}\u0000${metadata}`, { streamId: request.streamId, metadata });
      }
    }
    const keys = [...metaKeys.keys()];
    const { rows: metaRows } = await pool.query<{ absent: number | null; meta: string | null }>(
      `SELECT es_meta_absent(s.header, m.metadata) AS absent, es_meta_diff(s.header, m.metadata)::text AS meta
       FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS m(stream_id, metadata, ord)
       JOIN streams AS s ON s.stream_id = m.stream_id ORDER BY m.ord`,
      [keys.map((k) => metaKeys.get(k)!.streamId), keys.map((k) => metaKeys.get(k)!.metadata)],
    );
    const reduced = new Map(keys.map((k, i) => [k, metaRows[i]!]));
    const lines: string[] = [];
    for (const request of requests) {
      const stream = streams.get(request.streamId);
      if (stream === undefined) throw new Error(`history for ${request.streamId}, which is not opened`);
      let revision = typeof request.expectedRevision === 'bigint' ? request.expectedRevision + 1n : 0n;
      for (const event of request.events) {
        const { shapeKey, body } = encodePayload(event.type, event.data);
        let shapeNo = shapeNos.get(shapeKey);
        if (shapeNo === undefined) {
          const { rows } = await pool.query<{ no: number }>('SELECT es_shape_no($1::jsonb) AS no', [shapeKey]);
          shapeNo = rows[0]!.no;
          shapeNos.set(shapeKey, shapeNo);
        }
        const { absent, meta } = reduced.get(`${request.streamId}\u0000${JSON.stringify(event.metadata ?? {})}`)!;
        lines.push(
          [String(position), event.id, String(revision), recordedAt(event), stream.streamNo, String(shapeNo), absent === null ? '\\N' : String(absent), copyText(body), meta === null ? '\\N' : copyText(meta)].join('\t'),
        );
        position += 1n;
        revision += 1n;
      }
    }
    await copyInto(pool, 'event_log', [Buffer.from(`${lines.join('\n')}\n`)], EVENT_LOG_COLUMNS);
    if ((from + COPY_CHUNK) % 1_000_000 === 0) progress(`history: ${formatCount(from + COPY_CHUNK)} of ${formatCount(count)} events copied`);
  }
  await pool.query("SELECT setval('events_position_seq', $1)", [(position - 1n).toString()]);
  await pool.query(
    `UPDATE streams AS s SET (last_revision, last_position) = (SELECT max(e.revision), max(e.position) FROM event_log AS e WHERE e.stream_no = s.stream_no)
     WHERE s.stream_id = ANY ($1::text[])`,
    [[...streams.keys()]],
  );
  // This machine's PostgreSQL has autovacuum off: without statistics the planner may scan.
  await pool.query('ANALYZE event_log');
  await pool.query('ANALYZE streams');
}
