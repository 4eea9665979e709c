import { TallyError } from '@tally/domain';

/** Where a stored event sits, as an operator finds it again: id, type, stream@revision, position. */
interface StoredEventRef {
  readonly id: string;
  readonly type: string;
  readonly streamId: string;
  readonly revision: bigint;
  readonly position: bigint;
}

/**
 * A stored ledger event the relay can never publish: it cannot be encoded with the topic's schema
 * (a faulty writer or migration stored a field of the wrong type), or the topic refuses its one
 * record as too large. Never skipped (billing would miss it), and retrying cannot help: the relay
 * fails, naming the event, with its checkpoint before it, as the projector names an event it
 * cannot fold (UnfoldableLedgerEventError).
 */
export class UnpublishableLedgerEventError extends TallyError {
  readonly code = 'unpublishable_ledger_event';
  readonly retriable = false;

  constructor(
    readonly event: StoredEventRef,
    what: 'encoded' | 'taken by the topic',
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`ledger event ${event.id} (${event.type}, ${event.streamId}@${event.revision}, position ${event.position}) cannot be ${what}: ${reason}`, { cause });
  }
}

/**
 * The schema registry answered the relay's registration with a refusal that waiting will not
 * change: the schema is incompatible with the subject's (409) or invalid (422), or the relay's
 * credentials are refused (401, 403: TALLY_SCHEMA_REGISTRY_USERNAME/PASSWORD or the registry's
 * roles are wrong). The relay fails, loudly, rather than retry it at warn for ever.
 */
export class LedgerSchemaRefusedError extends TallyError {
  readonly code = 'ledger_schema_refused';
  readonly retriable = false;

  constructor(
    readonly subject: string,
    readonly status: number | undefined,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const why = status === 401 || status === 403 ? 'its credentials were refused' : 'it refused the schema';
    super(`the schema registry did not register the ledger event schema under ${subject}: ${why} (${status ?? 'no status'}: ${reason})`, { cause });
  }
}

/** An option createLedgerRelay cannot work with; thrown before anything connects. */
export class LedgerRelayOptionsError extends Error {
  override readonly name = 'LedgerRelayOptionsError';
}
