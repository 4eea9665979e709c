import { BalanceEvent, fromStoredLedgerEvent, toLedgerPayload } from '@tally/domain';
import type { EventToAppend, JsonObject, RecordedEvent } from '@tally/event-store';
import { LEDGER_EVENT_SCHEMA_VERSION, LedgerEventMetadataV1, type LedgerActorV1 } from '@tally/schemas';
import { commandIds, ledgerEventId } from './deterministicId';

export interface BalanceContext {
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
}

/** Who asked for a command over the API (see LedgerActorV1). */
export type LedgerActor = LedgerActorV1;

export interface RecordedBalanceEvent {
  readonly eventId: string;
  readonly event: BalanceEvent;
  readonly metadata: LedgerEventMetadataV1;
  readonly revision: bigint;
  readonly position: bigint;
  readonly recordedAt: Date;
}

/**
 * Serialises the events a command caused, with ids derived from the command id (see
 * deterministicId). A caller that already derived the first id (the metering consumer does,
 * for its duplicate check) passes it: hashing is a measurable share of the consumer's CPU.
 */
export function toEventsToAppend(
  events: readonly BalanceEvent[],
  context: BalanceContext,
  commandId: string,
  options: { readonly requestHash?: string; readonly firstEventId?: string; readonly actor?: LedgerActor } = {},
): EventToAppend[] {
  const { requestHash, firstEventId, actor } = options;
  const appended = new Array<EventToAppend>(events.length);
  for (let index = 0; index < events.length; index += 1) {
    const event = events[index]!;
    const payload = toLedgerPayload(event);
    // Built field by field (no spreads): this runs for every ledger event the consumer writes.
    const metadata: LedgerEventMetadataV1 = {
      schemaVersion: LEDGER_EVENT_SCHEMA_VERSION,
      balanceId: context.balanceId,
      customerId: context.customerId,
      productId: context.productId,
    };
    // A usage charge's causation is its usage id and balance, both stored already: not
    // written (about 50 bytes of every ledger event), derived again on reading (causationOf).
    if (derivedCausation(event, context.balanceId) !== commandId) metadata.causationId = commandId;
    if (requestHash !== undefined) metadata.requestHash = requestHash;
    if (actor !== undefined) metadata.actor = actor;
    appended[index] = {
      id: index === 0 && firstEventId !== undefined ? firstEventId : ledgerEventId(commandId, index),
      type: payload.type,
      data: payload.data as unknown as JsonObject,
      metadata: metadata as unknown as JsonObject,
    };
  }
  return appended;
}

/** The command id a stored event need not name: a usage charge's (see toEventsToAppend). */
function derivedCausation(event: BalanceEvent, balanceId: string): string | undefined {
  return event.type === 'CreditConsumed' && event.usage !== null ? commandIds.usage(event.usage.eventId, balanceId) : undefined;
}

/** The command that caused a stored event, whether its metadata names it or it is derived. */
export function causationOf(event: BalanceEvent, metadata: LedgerEventMetadataV1): string | null {
  return metadata.causationId ?? derivedCausation(event, metadata.balanceId) ?? null;
}

export function fromRecordedEvent(recorded: RecordedEvent): RecordedBalanceEvent {
  const event = fromStoredLedgerEvent(recorded);
  const stored = recorded.metadata as unknown as LedgerEventMetadataV1;
  return {
    eventId: recorded.id,
    event,
    metadata: { ...stored, causationId: causationOf(event, stored) },
    revision: recorded.revision,
    position: recorded.position,
    recordedAt: recorded.recordedAt,
  };
}
