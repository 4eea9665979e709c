import { TallyError } from '@tally/domain';
import type { ExpectedRevision } from './eventStore';

/** How many items an error's message names: its fields keep them all. */
const NAMED_IN_MESSAGE = 10;

/**
 * The first NAMED_IN_MESSAGE items, then how many more: an append of a consumer's chunk can fail
 * on hundreds of streams or ids, and its error should stay one readable line in a log.
 */
function named(items: readonly string[], separator: string): string {
  if (items.length <= NAMED_IN_MESSAGE) return items.join(separator);
  return `${items.slice(0, NAMED_IN_MESSAGE).join(separator)}${separator}and ${items.length - NAMED_IN_MESSAGE} more`;
}

export interface RevisionConflict {
  readonly streamId: string;
  readonly expected: ExpectedRevision;
  /** The stream's last revision when the append was checked, or `no_stream`. */
  readonly actual: bigint | 'no_stream';
}

/**
 * The caller's view of one or more streams is stale: another writer appended first, or the
 * request re-sent only part of an earlier append. Retriable: reload the streams, decide again,
 * append again.
 */
export class WrongExpectedRevisionError extends TallyError {
  readonly code = 'wrong_expected_revision';
  readonly retriable = true;
  /** Every mismatched stream of the call (appendMany checks all before failing). */
  readonly conflicts: readonly RevisionConflict[];
  readonly streamIds: readonly string[];
  /** The first conflict's stream, expected and actual revision, for the common one-stream case. */
  readonly streamId: string;
  readonly expected: ExpectedRevision;
  readonly actual: bigint | 'no_stream';

  constructor(conflicts: readonly [RevisionConflict, ...RevisionConflict[]]) {
    const [first] = conflicts;
    super(`wrong expected revision: ${named(conflicts.map((c) => `${c.streamId} expected ${String(c.expected)}, actual ${String(c.actual)}`), '; ')}`);
    this.conflicts = conflicts;
    this.streamIds = conflicts.map((c) => c.streamId);
    this.streamId = first.streamId;
    this.expected = first.expected;
    this.actual = first.actual;
  }
}

/**
 * PostgreSQL could not be reached or dropped the connection. An append that fails this way may
 * or may not have committed (the acknowledgement can be what was lost); retrying it with the
 * same event ids is safe, since a repeat of stored events is idempotent.
 */
export class EventStoreUnavailableError extends TallyError {
  readonly code = 'event_store_unavailable';
  readonly retriable = true;

  constructor(cause: unknown) {
    // The message reaches API clients (a portal customer too): the cause names the database's
    // address and driver, so it stays with the error, for the log (pino writes causes).
    super('the event store is unavailable; retry shortly', { cause });
  }
}

/**
 * An event id of the append is already stored in another stream, or appears twice in the
 * append. Event ids are derived from what they record, so this is a bug in the caller, and
 * retrying cannot help.
 */
export class DuplicateEventIdError extends TallyError {
  readonly code = 'duplicate_event_id';
  readonly retriable = false;

  constructor(
    readonly eventIds: readonly string[],
    reason: string,
  ) {
    super(`${reason}: ${named(eventIds, ', ')}`);
  }

  /** Ids the store holds in streams other than the ones appended to (each store's own check finds them). */
  static storedInOtherStreams(foreign: readonly { readonly streamId: string; readonly eventIds: readonly string[] }[]): DuplicateEventIdError {
    return new DuplicateEventIdError(
      foreign.flatMap((f) => f.eventIds),
      `event ids already stored in another stream (appending to ${named(foreign.map((f) => f.streamId), ', ')})`,
    );
  }
}

/** A malformed request to the store (not a UUID, no events, a negative revision): a caller bug. */
export class InvalidEventStoreRequestError extends TallyError {
  readonly code = 'invalid_event_store_request';
  readonly retriable = false;
}

/**
 * An append's marker (see AppendManyOptions.markers) is already recorded: another writer consumed
 * that input first. Nothing of the append was written. Retriable: re-read the markers, decide
 * again without those inputs, append again.
 */
export class MarkerAlreadyRecordedError extends TallyError {
  readonly code = 'marker_already_recorded';
  readonly retriable = true;

  constructor(readonly markers: readonly string[]) {
    super(`${markers.length} append marker(s) already recorded`);
  }
}

/**
 * Events of a marked append (AppendManyOptions.markers) are stored already, without those
 * markers: an earlier run by a writer that recorded none (a metering consumer from before
 * markers). Nothing of the append was written. Not retriable as it is: read those ids, decide
 * again knowing them, append again.
 */
export class StoredWithoutMarkerError extends TallyError {
  readonly code = 'stored_without_marker';
  readonly retriable = false;

  constructor(readonly eventIds: readonly string[]) {
    super(`${eventIds.length} event(s) of a marked append stored already, without their markers`);
  }
}

/**
 * EventStoreDB: the append lost the race for the journal (another writer committed between its
 * check and its commit) round after round, up to the adapter's bound. Nothing of it was
 * committed. Retriable: the writers it lost to are done by then, or will be soon.
 */
export class EventStoreContendedError extends TallyError {
  readonly code = 'event_store_contended';
  readonly retriable = true;

  constructor(rounds: number) {
    super(`the append lost the race for the event store's journal ${rounds} times in a row; retry shortly`);
  }
}

/**
 * EventStoreDB: the stream was deleted for good (a tombstone): it can be neither read nor
 * appended to again. An operator's doing, so retrying cannot help.
 */
export class EventStoreStreamDeletedError extends TallyError {
  readonly code = 'event_stream_deleted';
  readonly retriable = false;

  constructor(
    readonly streamId: string,
    options?: { cause?: unknown },
  ) {
    super(`stream ${streamId} was deleted from the event store; it cannot be read or appended to`, options);
  }
}

/**
 * EventStoreDB stored a journal entry's events at other revisions than the entry recorded: the
 * stream had been soft-deleted, and the server recreated it numbering on from its old last
 * revision. The store no longer matches its journal; an operator must repair it, so not retriable.
 */
export class StreamRevisionMismatchError extends TallyError {
  readonly code = 'stream_revision_mismatch';
  readonly retriable = false;

  constructor(
    readonly streamId: string,
    readonly expectedRevision: bigint,
    readonly actualRevision: bigint,
  ) {
    super(
      `the event store put events of ${streamId} at revision ${actualRevision} where its journal recorded ${expectedRevision} ` +
        `(a soft-deleted stream recreated?); the entry is not applied further: see README, "EventStoreDB as the event store"`,
    );
  }
}
