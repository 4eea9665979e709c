import type { RecordedEvent } from '@tally/event-store';
import {
  LEDGER_EVENT_TYPES,
  type CreditBalanceOpenedV1,
  type CreditBalanceDepletedV1,
  type CreditBalanceSettingsChangedV1,
  type CreditConsumedV1,
  type CreditToppedUpV1,
  type LedgerEventMetadataV1,
  type LedgerEventPayloadV1,
  type LedgerEventType,
  type LowBalanceWarnedV1,
} from '@tally/schemas';

/** The payload records of the Avro schema: the stored payload without what the envelope carries. */
export type CreditBalanceOpenedRecord = Pick<CreditBalanceOpenedV1, 'name' | 'lowBalanceThreshold'>;
export type CreditToppedUpRecord = Omit<CreditToppedUpV1, 'occurredAt'>;
export type CreditConsumedRecord = Omit<CreditConsumedV1, 'occurredAt'>;
export type LowBalanceWarnedRecord = Omit<LowBalanceWarnedV1, 'occurredAt'>;
export type CreditBalanceDepletedRecord = Omit<CreditBalanceDepletedV1, 'occurredAt'>;
export type CreditBalanceSettingsChangedRecord = Omit<CreditBalanceSettingsChangedV1, 'occurredAt'>;

interface PayloadRecords {
  CreditBalanceOpened: CreditBalanceOpenedRecord;
  CreditToppedUp: CreditToppedUpRecord;
  CreditConsumed: CreditConsumedRecord;
  LowBalanceWarned: LowBalanceWarnedRecord;
  CreditBalanceDepleted: CreditBalanceDepletedRecord;
  CreditBalanceSettingsChanged: CreditBalanceSettingsChangedRecord;
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
}

const ledgerEventTypes: ReadonlySet<string> = new Set(LEDGER_EVENT_TYPES);

/** Whether a stored event is one of the ledger's: those are the events the topic carries. */
export function isLedgerEvent(recorded: RecordedEvent): boolean {
  return ledgerEventTypes.has(recorded.type);
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
  };
}

function toPayloadRecord(payload: LedgerEventPayloadV1): LedgerEventPayloadRecord {
  switch (payload.type) {
    case 'CreditBalanceOpened': {
      const { name, lowBalanceThreshold } = payload.data;
      return { 'io.tally.ledger.CreditBalanceOpened': { name, lowBalanceThreshold } };
    }
    case 'CreditToppedUp': {
      const { credits, source, reason, balanceAfter, purchase, grant } = payload.data;
      return {
        'io.tally.ledger.CreditToppedUp': {
          credits,
          source,
          reason,
          balanceAfter,
          purchase: purchase ?? null,
          grant: grant ?? null,
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
      const { name, lowBalanceThreshold } = payload.data;
      return { 'io.tally.ledger.CreditBalanceSettingsChanged': { name, lowBalanceThreshold } };
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
