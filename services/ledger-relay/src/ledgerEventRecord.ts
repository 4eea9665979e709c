import { formatCredits, parseStoredCredits } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import {
  LEDGER_EVENT_TYPES,
  type CreditBalanceOpenedV1,
  type CreditBalanceDepletedV1,
  type CreditBalanceSettingsChangedV1,
  type CreditConsumedV1,
  type CreditToppedUpV1,
  type CreditsHeldV1,
  type HoldCapturedV1,
  type HoldExpiredV1,
  type HoldReleasedV1,
  type LedgerEventMetadataV1,
  type LedgerEventPayloadV1,
  type LedgerEventType,
  type LowBalanceWarnedV1,
} from '@tally/schemas';

/** The payload records of the Avro schema: the stored payload without what the envelope carries. */
type CreditBalanceOpenedRecord = Pick<CreditBalanceOpenedV1, 'name' | 'lowBalanceThreshold'> & { overdraftLimit: string };
type CreditToppedUpRecord = Omit<CreditToppedUpV1, 'occurredAt' | 'heldAfter'>;
type CreditConsumedRecord = Omit<CreditConsumedV1, 'occurredAt' | 'heldAfter'>;
type LowBalanceWarnedRecord = Omit<LowBalanceWarnedV1, 'occurredAt'>;
type CreditBalanceDepletedRecord = Omit<CreditBalanceDepletedV1, 'occurredAt'>;
type CreditBalanceSettingsChangedRecord = Omit<CreditBalanceSettingsChangedV1, 'occurredAt' | 'overdraftLimit'> & { overdraftLimit: string };
// The figures after a hold event travel in the envelope (balance, held, available), as for every event that records them.
type Figures = 'balanceAfter' | 'heldAfter' | 'occurredAt';
type CreditsHeldRecord = Omit<CreditsHeldV1, Figures>;
type HoldCapturedRecord = Omit<HoldCapturedV1, Figures>;
type HoldReleasedRecord = Omit<HoldReleasedV1, Figures>;
type HoldExpiredRecord = Omit<HoldExpiredV1, Figures>;

interface PayloadRecords {
  CreditBalanceOpened: CreditBalanceOpenedRecord;
  CreditToppedUp: CreditToppedUpRecord;
  CreditConsumed: CreditConsumedRecord;
  LowBalanceWarned: LowBalanceWarnedRecord;
  CreditBalanceDepleted: CreditBalanceDepletedRecord;
  CreditBalanceSettingsChanged: CreditBalanceSettingsChangedRecord;
  CreditsHeld: CreditsHeldRecord;
  HoldCaptured: HoldCapturedRecord;
  HoldReleased: HoldReleasedRecord;
  HoldExpired: HoldExpiredRecord;
}

/**
 * The payload union in Avro's JSON form, which is also how avsc (and so the registry client)
 * reads and writes a union of records: an object with one key, the branch's full name.
 */
export type LedgerEventPayloadRecord = {
  [T in LedgerEventType]: { [K in `io.tally.ledger.${T}`]: PayloadRecords[T] };
}[LedgerEventType];

/** A value of the `credit-ledger` topic: `avro/ledger-event.avsc` as avsc represents it (longs as numbers). */
export interface LedgerEventRecord {
  readonly eventId: string;
  readonly type: LedgerEventType;
  readonly balanceId: string;
  readonly customerId: string;
  readonly productId: string;
  readonly streamRevision: number;
  readonly globalPosition: number;
  /** Epoch milliseconds (timestamp-millis). */
  readonly occurredAt: number;
  readonly recordedAt: number;
  readonly payload: LedgerEventPayloadRecord;
  /** The three figures after the event, where it records them (top-ups, consumption, holds); null otherwise. */
  readonly balance: string | null;
  readonly held: string | null;
  readonly available: string | null;
  /** Who asked for the change over the API (the metadata's `actor`); null when nobody did or it was not recorded. */
  readonly actor: { readonly kind: string; readonly keyId: string | null; readonly keyName: string | null } | null;
}

const ledgerEventTypes: ReadonlySet<string> = new Set(LEDGER_EVENT_TYPES);

/** Whether a stored event is one of the ledger's: those are the events the topic carries. */
export function isLedgerEvent(recorded: RecordedEvent): boolean {
  return ledgerEventTypes.has(recorded.type);
}

function actorRecordOf(actor: LedgerEventMetadataV1['actor']): LedgerEventRecord['actor'] {
  if (actor === undefined) return null;
  return actor.kind === 'key' ? { kind: 'key', keyId: actor.keyId, keyName: actor.keyName } : { kind: actor.kind, keyId: null, keyName: null };
}

/**
 * Maps a stored ledger event (payload v1 and its metadata) to the topic's Avro value. Fields are
 * picked one by one rather than spread, so a field a later payload version adds stays out of the
 * message until the Avro schema gains it (with a default, under BACKWARD compatibility).
 */
export function toLedgerEventRecord(recorded: RecordedEvent): LedgerEventRecord {
  const payload = { type: recorded.type, data: recorded.data } as unknown as LedgerEventPayloadV1;
  const metadata = recorded.metadata as unknown as LedgerEventMetadataV1;
  return {
    eventId: recorded.id,
    type: payload.type,
    balanceId: requireText(metadata.balanceId, 'metadata.balanceId', recorded),
    customerId: requireText(metadata.customerId, 'metadata.customerId', recorded),
    productId: requireText(metadata.productId, 'metadata.productId', recorded),
    streamRevision: toSafeNumber(recorded.revision, 'revision'),
    globalPosition: toSafeNumber(recorded.position, 'position'),
    occurredAt: toEpochMillis(payload.data.occurredAt, recorded),
    recordedAt: recorded.recordedAt.getTime(),
    payload: toPayloadRecord(payload),
    ...figuresOf(payload),
    actor: actorRecordOf(metadata.actor),
  };
}

/**
 * balance, held and available after the event, from what it records. A top-up or consumption
 * stored before holds has no heldAfter: nothing was held then, so it is 0.
 */
function figuresOf(payload: LedgerEventPayloadV1): Pick<LedgerEventRecord, 'balance' | 'held' | 'available'> {
  const data = payload.data as { balanceAfter?: string; heldAfter?: string };
  if (data.balanceAfter === undefined) return { balance: null, held: null, available: null };
  const heldAfter = data.heldAfter ?? '0';
  return {
    balance: data.balanceAfter,
    held: heldAfter,
    available: formatCredits(parseStoredCredits(data.balanceAfter) - parseStoredCredits(heldAfter)),
  };
}

function toPayloadRecord(payload: LedgerEventPayloadV1): LedgerEventPayloadRecord {
  switch (payload.type) {
    case 'CreditBalanceOpened': {
      const { name, lowBalanceThreshold, overdraftLimit } = payload.data;
      return { 'io.tally.ledger.CreditBalanceOpened': { name, lowBalanceThreshold, overdraftLimit: overdraftLimit ?? '0' } };
    }
    case 'CreditToppedUp': {
      const { credits, source, reason, balanceAfter, purchase, grant, refund } = payload.data;
      return {
        'io.tally.ledger.CreditToppedUp': {
          credits,
          source,
          reason,
          balanceAfter,
          purchase: purchase ?? null,
          grant: grant ?? null,
          refund: refund ?? null,
        },
      };
    }
    case 'CreditConsumed': {
      const { credits, source, reason, usage, balanceAfter } = payload.data;
      return { 'io.tally.ledger.CreditConsumed': { credits, source, reason, usage: usage ?? null, balanceAfter } };
    }
    case 'LowBalanceWarned': {
      const { threshold, balance } = payload.data;
      return { 'io.tally.ledger.LowBalanceWarned': { threshold, balance } };
    }
    case 'CreditBalanceDepleted':
      return { 'io.tally.ledger.CreditBalanceDepleted': { balance: payload.data.balance } };
    case 'CreditBalanceSettingsChanged': {
      const { name, lowBalanceThreshold, overdraftLimit } = payload.data;
      return { 'io.tally.ledger.CreditBalanceSettingsChanged': { name, lowBalanceThreshold, overdraftLimit: overdraftLimit ?? '0' } };
    }
    case 'CreditsHeld': {
      const { holdId, credits, expiresAt, reference } = payload.data;
      return { 'io.tally.ledger.CreditsHeld': { holdId, credits, expiresAt, reference: reference ?? null } };
    }
    case 'HoldCaptured': {
      const { holdId, credits, released } = payload.data;
      return { 'io.tally.ledger.HoldCaptured': { holdId, credits, released } };
    }
    case 'HoldReleased': {
      const { holdId, credits, reason, usageEventId } = payload.data;
      return { 'io.tally.ledger.HoldReleased': { holdId, credits, reason: reason ?? null, usageEventId: usageEventId ?? null } };
    }
    case 'HoldExpired': {
      const { holdId, credits, expiresAt } = payload.data;
      return { 'io.tally.ledger.HoldExpired': { holdId, credits, expiresAt } };
    }
    default: {
      const unhandled: never = payload;
      throw new Error(`not a ledger event: ${JSON.stringify(unhandled).slice(0, 200)}`);
    }
  }
}

function requireText(value: unknown, field: string, recorded: RecordedEvent): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new Error(`ledger event ${recorded.id} (${recorded.streamId}@${recorded.revision}) has no ${field}`);
  }
  return value;
}

/** Avro longs are JS numbers in avsc; a counter past 2^53 would silently lose digits instead. */
function toSafeNumber(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < 0n) {
    throw new RangeError(`${field} ${value} cannot be published as an exact Avro long`);
  }
  return Number(value);
}

function toEpochMillis(iso: string, recorded: RecordedEvent): number {
  const millis = Date.parse(iso);
  if (Number.isNaN(millis)) {
    throw new Error(`ledger event ${recorded.id} has an unreadable occurredAt ${JSON.stringify(iso)}`);
  }
  return millis;
}
