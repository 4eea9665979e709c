import { createHash, hash as oneShotHash } from 'node:crypto';
import { isWellFormedText } from '@tally/domain';
import { DuplicateEventIdError, InvalidEventStoreRequestError } from './errors';
import type { AppendRequest, JsonObject } from './eventStore';
import { serializeExpectedRevision } from './expectedRevision';

// What every store checks before an append reaches it: the same refusals, worded the same.


/** One-shot hashing where Node has it (20.12+): no Hash object per marker. */
const sha256Hex = (text: string): string =>
  typeof oneShotHash === 'function' ? oneShotHash('sha256', text, 'hex') : createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Each distinct marker by the hex of its stored key: the first 16 bytes of the SHA-256 of its
 * UTF-8, as migration 005's backfill computes it. A fixed 16 bytes per marker, whatever its
 * length, for a table that keeps one row per usage event for ever
 * (PostgreSQL's append_markers, EventStoreDB's marker streams).
 */
export function markerHashes(markers: readonly string[]): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const marker of markers) {
    if (typeof marker !== 'string' || !isWellFormedText(marker)) {
      throw new InvalidEventStoreRequestError('a marker must be a well-formed string');
    }
    hashes.set(sha256Hex(marker).slice(0, 32), marker);
  }
  return hashes;
}

export interface AppendPayload {
  readonly streamId: string;
  readonly expectedRevision: string;
  /** Read only: an event may be the caller's own object (validateAppendRequests). */
  readonly events: readonly { readonly id: string; readonly type: string; readonly data: JsonObject; readonly metadata: JsonObject }[];
}

/**
 * Rejects what a store would reject less clearly (PostgreSQL, repeated ids, as an unexplained
 * constraint violation) and shapes the requests as append_events reads them.
 */
export function validateAppendRequests(requests: readonly AppendRequest[]): AppendPayload[] {
  const streamIds = new Set<string>();
  const eventIds = new Set<string>();
  const repeatedIds: string[] = [];
  const payload = requests.map((request) => {
    if (typeof request.streamId !== 'string' || request.streamId.length === 0) {
      throw new InvalidEventStoreRequestError('streamId must be a non-empty string');
    }
    if (streamIds.has(request.streamId)) {
      throw new InvalidEventStoreRequestError(`stream ${request.streamId} appears in more than one request; merge them`);
    }
    streamIds.add(request.streamId);
    if (request.events.length === 0) {
      throw new InvalidEventStoreRequestError(`no events to append to ${request.streamId}`);
    }
    return {
      streamId: request.streamId,
      expectedRevision: serializeExpectedRevision(request.expectedRevision),
      events: request.events.map((event) => {
        const id = checkEventId(event.id);
        if (eventIds.has(id)) repeatedIds.push(id);
        eventIds.add(id);
        if (typeof event.type !== 'string' || event.type.length === 0) {
          throw new InvalidEventStoreRequestError(`event ${id} has no type`);
        }
        // The caller's own object when nothing needs normalising (the usual case): a copy per
        // event would live, like the original, until the append returns.
        return id === event.id && event.metadata !== undefined ? (event as AppendPayload['events'][number]) : { id, type: event.type, data: event.data, metadata: event.metadata ?? {} };
      }),
    };
  });
  if (repeatedIds.length > 0) throw new DuplicateEventIdError(repeatedIds, 'event ids repeated within one append');
  return payload;
}

/**
 * 0 when id is a UUID in lower case, 1 when a UUID with an upper-case digit, -1 otherwise:
 * /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i in one pass over the
 * characters (the unit spec checks it against that expression), run for every appended event.
 */
function uuidCase(id: string): -1 | 0 | 1 {
  if (id.length !== 36) return -1;
  let upper: 0 | 1 = 0;
  for (let i = 0; i < 36; i += 1) {
    const code = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (code !== 45 /* - */) return -1;
    } else if (code >= 65 && code <= 70) {
      upper = 1; // A-F
    } else if (!((code >= 48 && code <= 57) || (code >= 97 && code <= 102))) {
      return -1;
    }
  }
  return upper;
}

/** PostgreSQL returns UUIDs in lower case; normalising keeps ids comparable with what callers sent. */
export function checkEventId(id: string): string {
  const found = typeof id === 'string' ? uuidCase(id) : -1;
  if (found === -1) throw new InvalidEventStoreRequestError(`event id must be a UUID; got ${JSON.stringify(id)}`);
  return found === 0 ? id : id.toLowerCase();
}

export function checkMaxCount(maxCount: number | undefined): number | null {
  if (maxCount === undefined) return null;
  if (!Number.isSafeInteger(maxCount) || maxCount < 0) {
    throw new InvalidEventStoreRequestError(`maxCount must be a non-negative integer; got ${maxCount}`);
  }
  return maxCount;
}
