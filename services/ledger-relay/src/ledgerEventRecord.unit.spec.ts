import type { RecordedEvent } from '@tally/event-store';
import { LEDGER_EVENT_TYPES, ledgerEventAvroSchema } from '@tally/schemas';
// avsc is what the registry client encodes and decodes with: valid here means publishable.
import { Type } from 'avsc';
import { isLedgerEvent, toLedgerEventRecord } from './ledgerEventRecord';

const avroType = Type.forSchema(ledgerEventAvroSchema as Parameters<typeof Type.forSchema>[0]);

const OCCURRED_AT = '2026-03-01T12:00:00.123Z';
const RECORDED_AT = new Date('2026-03-01T12:00:00.456Z');

function recorded(type: string, data: Record<string, unknown>, overrides: Partial<RecordedEvent> = {}): RecordedEvent {
  return {
    id: '6b0f1c9e-5d0a-5c3e-9f4b-2a1d8e7c6b5a',
    type,
    streamId: 'creditBalance-bal-1',
    revision: 3n,
    position: 42n,
    data: { ...data, occurredAt: OCCURRED_AT } as RecordedEvent['data'],
    metadata: { schemaVersion: 1, balanceId: 'bal-1', customerId: 'cust-1', productId: 'api-credits', causationId: 'cmd-1' },
    recordedAt: RECORDED_AT,
    ...overrides,
  };
}

const purchase = { bundleId: 'bundle-100', quantity: 2, unitPrice: '9.99', totalPrice: '19.98', currency: 'EUR' };
const grant = { subscriptionId: 'sub-1', planId: 'pro', period: 4, periodStart: '2026-03-01T00:00:00.000Z', periodEnd: '2026-04-01T00:00:00.000Z' };
const metadata = recorded('CreditBalanceDepleted', {}).metadata;
const byPortal = { metadata: { ...metadata, actor: { kind: 'portal' } } };
const byKey = { metadata: { ...metadata, actor: { kind: 'key', keyId: '0123456789ab', keyName: 'ops' } } };
const usage = { eventId: 'u-1', event: 'api_call', timestamp: '2026-03-01T11:59:59.5+01:00', quantity: '1.5' };

/** One stored event of every type and shape (nullable sub-records set and unset). */
const examples: RecordedEvent[] = [
  recorded('CreditBalanceOpened', { balanceId: 'bal-1', customerId: 'cust-1', productId: 'api-credits', name: 'API credits', lowBalanceThreshold: '10' }),
  recorded('CreditBalanceOpened', { balanceId: 'bal-1', customerId: 'cust-1', productId: 'api-credits', name: 'API credits', lowBalanceThreshold: null }),
  recorded('CreditToppedUp', { credits: '200', source: 'purchase', reason: null, balanceAfter: '250.5', purchase, grant: null }, byPortal),
  recorded('CreditToppedUp', { credits: '100', source: 'grant', reason: null, balanceAfter: '100', purchase: null, grant }),
  recorded('CreditToppedUp', { credits: '5', source: 'manual', reason: 'goodwill', balanceAfter: '5', purchase: null, grant: null }, byKey),
  recorded('CreditConsumed', { credits: '0.000001', source: 'usage', reason: null, usage, balanceAfter: '-3.25' }),
  recorded('CreditConsumed', { credits: '2', source: 'manual', reason: 'correction', usage: null, balanceAfter: '1' }),
  recorded('LowBalanceWarned', { threshold: '10', balance: '9.5' }),
  recorded('CreditBalanceDepleted', { balance: '-1' }),
  recorded('CreditBalanceSettingsChanged', { name: 'Renamed', lowBalanceThreshold: null }),
  recorded('CreditBalanceSettingsChanged', { name: 'Renamed', lowBalanceThreshold: null, overdraftLimit: '5' }),
  recorded('CreditConsumed', { credits: '2', source: 'hold', reason: null, usage: null, balanceAfter: '1', heldAfter: '3' }),
  recorded('CreditsHeld', { holdId: 'h-1', credits: '3', expiresAt: '2026-03-01T13:00:00.000Z', reference: 'render 7', balanceAfter: '1', heldAfter: '3' }),
  recorded('HoldCaptured', { holdId: 'h-1', credits: '2', released: '1', balanceAfter: '-1', heldAfter: '0' }),
  recorded('HoldReleased', { holdId: 'h-1', credits: '3', reason: null, usageEventId: 'u-1', balanceAfter: '1', heldAfter: '0' }),
  recorded('HoldExpired', { holdId: 'h-1', credits: '3', expiresAt: '2026-03-01T13:00:00.000Z', balanceAfter: '1', heldAfter: '0' }),
  recorded('CreditToppedUp', { credits: '2', source: 'refund', reason: 'outage', balanceAfter: '3', purchase: null, grant: null, refund: { entryId: 'c-1' } }, byKey),
];

describe('toLedgerEventRecord', () => {
  it('has an example of every ledger event type', () => {
    expect(new Set(examples.map((e) => e.type))).toEqual(new Set(LEDGER_EVENT_TYPES));
  });

  it.each(examples.map((e, i) => [`${e.type} #${i}`, e] as const))('maps %s to a value of the Avro schema that round-trips', (_, event) => {
    const value = toLedgerEventRecord(event);
    const invalidPaths: string[] = [];
    expect(avroType.isValid(value, { errorHook: (path) => invalidPaths.push(path.join('.')) })).toBe(true);
    expect(invalidPaths).toEqual([]);
    expect({ ...avroType.fromBuffer(avroType.toBuffer(value)) }).toEqual(value);
  });

  it('fills the envelope from the stored event and its metadata, times as epoch milliseconds', () => {
    expect(toLedgerEventRecord(examples[2]!)).toEqual({
      eventId: '6b0f1c9e-5d0a-5c3e-9f4b-2a1d8e7c6b5a',
      type: 'CreditToppedUp',
      balanceId: 'bal-1',
      customerId: 'cust-1',
      productId: 'api-credits',
      streamRevision: 3,
      globalPosition: 42,
      occurredAt: Date.parse(OCCURRED_AT),
      recordedAt: RECORDED_AT.getTime(),
      payload: {
        'io.tally.ledger.CreditToppedUp': { credits: '200', source: 'purchase', reason: null, balanceAfter: '250.5', purchase, grant: null, refund: null },
      },
      // Stored before holds: no heldAfter, so nothing was held.
      balance: '250.5',
      held: '0',
      available: '250.5',
      actor: { kind: 'portal', keyId: null, keyName: null },
    });
  });

  it('names the key that asked for a change, and nobody for what Tally did on its own', () => {
    expect(toLedgerEventRecord(examples[4]!).actor).toEqual({ kind: 'key', keyId: '0123456789ab', keyName: 'ops' });
    expect(toLedgerEventRecord(examples[3]!).actor).toBeNull();
  });

  it('carries balance, held and available in the envelope where the event records them, null where it does not', () => {
    const held = toLedgerEventRecord(examples.find((e) => e.type === 'CreditsHeld')!);
    expect(held).toMatchObject({ balance: '1', held: '3', available: '-2' });
    expect(held.payload).toEqual({
      'io.tally.ledger.CreditsHeld': { holdId: 'h-1', credits: '3', expiresAt: '2026-03-01T13:00:00.000Z', reference: 'render 7' },
    });
    expect(toLedgerEventRecord(examples.find((e) => e.type === 'HoldCaptured')!)).toMatchObject({ balance: '-1', held: '0', available: '-1' });
    expect(toLedgerEventRecord(examples.find((e) => e.type === 'LowBalanceWarned')!)).toMatchObject({ balance: null, held: null, available: null });
  });

  it('keeps fields the Avro schema does not have out of the payload (they need a schema change first)', () => {
    const value = toLedgerEventRecord(recorded('LowBalanceWarned', { threshold: '10', balance: '9', addedLater: 'x' }));
    expect(value.payload).toEqual({ 'io.tally.ledger.LowBalanceWarned': { threshold: '10', balance: '9' } });
  });

  it('refuses a position that an Avro long in JavaScript cannot carry exactly, rather than publish a wrong one', () => {
    const event = recorded('CreditBalanceDepleted', { balance: '0' }, { position: 2n ** 53n + 1n });
    expect(() => toLedgerEventRecord(event)).toThrow(/position/);
  });

  it('refuses an event without the customer it must be keyed by', () => {
    const event = recorded('CreditBalanceDepleted', { balance: '0' }, { metadata: { balanceId: 'bal-1' } });
    expect(() => toLedgerEventRecord(event)).toThrow(/customerId/);
  });
});

describe('isLedgerEvent', () => {
  it('accepts the ledger event types only', () => {
    expect(examples.every(isLedgerEvent)).toBe(true);
    expect(isLedgerEvent(recorded('SubscriptionStarted', {}))).toBe(false);
  });
});

describe('the actor field of the credit-ledger schema', () => {
  // The schema as it was before `actor`: what messages already on the topic were written with.
  const { fields, ...record } = ledgerEventAvroSchema;
  const before = Type.forSchema({ ...record, fields: fields.filter((field) => field.name !== 'actor') } as Parameters<typeof Type.forSchema>[0]);

  it('reads a message written before it as actor null (BACKWARD), and an older reader reads a new message without it (FORWARD)', () => {
    const value = toLedgerEventRecord(examples[4]!);
    const { actor, ...withoutActor } = value;
    expect(actor).not.toBeNull();
    const old = avroType.fromBuffer(before.toBuffer(withoutActor), avroType.createResolver(before));
    expect({ ...old }).toEqual({ ...withoutActor, actor: null });
    const readByOld = before.fromBuffer(avroType.toBuffer(value), before.createResolver(avroType));
    expect({ ...readByOld }).toEqual(withoutActor);
  });
});

describe('the refund field of CreditToppedUp in the credit-ledger schema', () => {
  // The schema as it was before refunds: what messages already on the topic were written with.
  const withoutRefund = JSON.parse(JSON.stringify(ledgerEventAvroSchema)) as typeof ledgerEventAvroSchema;
  const payloadField = withoutRefund.fields.find((field) => field.name === 'payload') as unknown as { type: Array<{ name: string; fields: Array<{ name: string }> }> };
  const toppedUp = payloadField.type.find((branch) => branch.name === 'CreditToppedUp')!;
  toppedUp.fields = toppedUp.fields.filter((field) => field.name !== 'refund');
  const before = Type.forSchema(withoutRefund as Parameters<typeof Type.forSchema>[0]);

  it('reads a top-up written before it as refund null (BACKWARD), and an older reader reads a refund without it (FORWARD)', () => {
    const refund = toLedgerEventRecord(examples[examples.length - 1]!);
    expect(refund.payload).toEqual({ 'io.tally.ledger.CreditToppedUp': { credits: '2', source: 'refund', reason: 'outage', balanceAfter: '3', purchase: null, grant: null, refund: { entryId: 'c-1' } } });
    const manual = toLedgerEventRecord(examples[4]!);
    const { refund: _none, ...oldPayload } = (manual.payload as { 'io.tally.ledger.CreditToppedUp': Record<string, unknown> })['io.tally.ledger.CreditToppedUp'];
    const written = before.toBuffer({ ...manual, payload: { 'io.tally.ledger.CreditToppedUp': oldPayload } });
    expect({ ...avroType.fromBuffer(written, avroType.createResolver(before)) }).toEqual(manual);
    const readByOld = before.fromBuffer(avroType.toBuffer(refund), before.createResolver(avroType)) as { payload: Record<string, Record<string, unknown>> };
    expect(readByOld.payload['io.tally.ledger.CreditToppedUp']).toEqual({ credits: '2', source: 'refund', reason: 'outage', balanceAfter: '3', purchase: null, grant: null });
  });
});
