import { isTransientPgError } from '@tally/postgres';
import { DuplicateEventIdError, EventStoreUnavailableError, WrongExpectedRevisionError, type RevisionConflict } from './errors';
import { parseExpectedRevision } from './expectedRevision';

/** Maps append_events' SQLSTATEs (see 001_event_store.sql) and connection failures to typed errors. */
export function translateError(error: unknown): unknown {
  const { code, detail } = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; detail?: unknown };
  if (code === 'TY001' && typeof detail === 'string') {
    const conflicts = (JSON.parse(detail) as { streamId: string; expected: string; actual: string }[]).map(
      (c): RevisionConflict => ({
        streamId: c.streamId,
        expected: parseExpectedRevision(c.expected),
        actual: c.actual === 'no_stream' ? 'no_stream' : BigInt(c.actual),
      }),
    );
    if (conflicts.length > 0) return new WrongExpectedRevisionError(conflicts as [RevisionConflict, ...RevisionConflict[]]);
  }
  if (code === 'TY002' && typeof detail === 'string') {
    const foreign = JSON.parse(detail) as { streamId: string; eventIds: string[] }[];
    return DuplicateEventIdError.storedInOtherStreams(foreign);
  }
  if (isTransientPgError(error)) return new EventStoreUnavailableError(error);
  return error;
}
