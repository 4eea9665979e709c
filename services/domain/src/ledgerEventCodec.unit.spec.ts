import { LEDGER_EVENT_TYPES, LedgerEventPayloadV1 } from '@tally/schemas';
import { BalanceEvent } from './balance';
import { MAX_CREDITS } from './credits';
import { InvalidAmountError } from './errors';
import { fromLedgerPayload, fromStoredLedgerEvent, toLedgerPayload } from './ledgerEventCodec';
import { balanceIdOfStream, balanceStreamId } from './streams';
import {
  captured,
  chargedByHold,
  CREDIT,
  consumed,
  deducted,
  depleted,
  expired,
  held,
  opened,
  released,
  settingsChanged,
  toppedUp,
  USAGE,
  warned,
} from './testing/balanceFixtures';

const purchase = { bundleId: 'starter', quantity: 3, unitPrice: '9.99', totalPrice: '29.97', currency: 'EUR' };
const grant = {
  subscriptionId: 'sub-1',
  planId: 'pro',
  period: 2,
  periodStart: '2026-03-01T00:00:00.000Z',
  periodEnd: '2026-04-01T00:00:00.000Z',
};

const examples: [string, BalanceEvent][] = [
  ['CreditBalanceOpened without a threshold', opened()],
  ['CreditBalanceOpened with a threshold', opened(12_500_000n, 'Tokens')],
  ['CreditBalanceOpened with a zero threshold', opened(0n)],
  ['CreditToppedUp from the starting balance', toppedUp(100n * CREDIT, 100n * CREDIT, 'starting')],
  ['CreditToppedUp manually with a reason', toppedUp(1n, -5n * CREDIT + 1n, 'manual', { reason: 'goodwill' })],
  ['CreditToppedUp by a purchase', toppedUp(300n * CREDIT, 310n * CREDIT, 'purchase', { purchase })],
  ['CreditToppedUp by a grant', toppedUp(50n * CREDIT, 50n * CREDIT, 'grant', { grant, reason: 'monthly grant' })],
  ['CreditToppedUp by a refund', toppedUp(2n * CREDIT, 5n * CREDIT, 'refund', { refund: { entryId: '6b0f1c9e-5d0a-5c3e-9f4b-2a1d8e7c6b5a' }, reason: 'outage' })],
  ['CreditConsumed by usage', consumed(1_234_567n, -1_234_567n, { ...USAGE, quantity: '1234.567' })],
  ['CreditConsumed manually', deducted(3n * CREDIT, 0n, 'correction')],
  ['CreditConsumed manually without a reason', deducted(3n * CREDIT, 0n, null)],
  ['LowBalanceWarned', warned(10n * CREDIT, 9_999_999n)],
  ['LowBalanceWarned below zero', warned(0n, -1n)],
  ['CreditBalanceDepleted at zero', depleted(0n)],
  ['CreditBalanceDepleted below zero', depleted(-250_000n)],
  ['CreditBalanceSettingsChanged', settingsChanged('Renamed', 1n)],
  ['CreditBalanceSettingsChanged clearing the threshold', settingsChanged('Renamed', null)],
  ['CreditBalanceOpened with an overdraft limit', { ...opened(), overdraftLimit: 5n * CREDIT }],
  ['CreditBalanceSettingsChanged with an overdraft limit', settingsChanged('Renamed', null, 1n)],
  ['CreditToppedUp while credits are held', { ...toppedUp(CREDIT, 2n * CREDIT), heldAfter: 3n * CREDIT }],
  ['CreditConsumed by a hold capture', chargedByHold(2n * CREDIT, { balanceAfter: -CREDIT, heldAfter: 2n * CREDIT })],
  ['CreditsHeld', { ...held('h-1', 2n * CREDIT, { balanceAfter: CREDIT, heldAfter: 2n * CREDIT }), reference: 'render 7' }],
  ['HoldCaptured in part', captured('h-1', 1n, 2n * CREDIT - 1n, { balanceAfter: -1n, heldAfter: 0n })],
  ['HoldReleased by the caller', released('h-1', 2n * CREDIT, { balanceAfter: CREDIT, heldAfter: 0n }, { reason: 'job cancelled' })],
  ['HoldReleased by a usage event', released('h-1', 2n * CREDIT, { balanceAfter: 0n, heldAfter: CREDIT }, { usageEventId: 'evt-9' })],
  ['HoldExpired', expired('h-1', 2n * CREDIT, { balanceAfter: CREDIT, heldAfter: 0n })],
];

describe('ledger event codec', () => {
  it('has an example for every ledger event type', () => {
    expect(new Set(examples.map(([, event]) => event.type))).toEqual(new Set(LEDGER_EVENT_TYPES));
  });

  it.each(examples)('round-trips %s', (_name, event) => {
    expect(fromLedgerPayload(toLedgerPayload(event))).toEqual(event);
  });

  it.each(examples)('writes %s as JSON-safe primitives that survive JSON', (_name, event) => {
    const payload = toLedgerPayload(event);
    const viaJson = JSON.parse(JSON.stringify(payload)) as LedgerEventPayloadV1;
    expect(viaJson).toEqual(payload);
    expect(fromLedgerPayload(viaJson)).toEqual(event);
  });

  it.each(examples)('reads %s back from a stored event as the store hands it out (type and data beside its other fields)', (_name, event) => {
    const { type, data } = JSON.parse(JSON.stringify(toLedgerPayload(event))) as { type: string; data: object };
    const stored = { streamId: 'balance-b-1', revision: 3n, position: 17n, type, data, metadata: { balanceId: 'b-1' } };
    expect(fromStoredLedgerEvent(stored)).toEqual(event);
  });

  it.each(examples)('reads %s into its type\'s fields only: a field its payload version does not name is not carried', (_name, event) => {
    const { type, data } = toLedgerPayload(event);
    expect(fromStoredLedgerEvent({ type, data: { ...data, addedLater: '1' } })).toEqual(event);
  });

  it('refuses a stored event of a type it does not know', () => {
    const stored = { streamId: 'balance-b-1', revision: 3n, position: 17n, type: 'CreditInvented', data: { credits: '1' } };
    expect(() => fromStoredLedgerEvent(stored)).toThrow('Unknown ledger event {"type":"CreditInvented","data":{"credits":"1"}}');
  });

  it('stores events without holds or overdraft exactly as before holds existed: the added fields are left out while zero', () => {
    expect(toLedgerPayload(opened()).data).not.toHaveProperty('overdraftLimit');
    expect(toLedgerPayload(toppedUp(CREDIT, CREDIT)).data).not.toHaveProperty('heldAfter');
    expect(toLedgerPayload(toppedUp(CREDIT, CREDIT)).data).not.toHaveProperty('refund');
    expect(toLedgerPayload(consumed(CREDIT, 0n)).data).not.toHaveProperty('heldAfter');
    expect(toLedgerPayload(settingsChanged('x', null)).data).not.toHaveProperty('overdraftLimit');
    expect(toLedgerPayload({ ...toppedUp(CREDIT, CREDIT), heldAfter: 1n }).data).toMatchObject({ heldAfter: '0.000001' });
  });

  it('writes amounts as shortest decimal strings', () => {
    expect(toLedgerPayload(toppedUp(12_500_000n, -250_000n, 'manual'))).toEqual({
      type: 'CreditToppedUp',
      data: {
        credits: '12.5',
        source: 'manual',
        reason: null,
        balanceAfter: '-0.25',
        purchase: null,
        grant: null,
        occurredAt: '2026-03-01T12:00:00.000Z',
      },
    });
    expect(toLedgerPayload(opened(1n)).data).toMatchObject({ lowBalanceThreshold: '0.000001' });
    expect(toLedgerPayload(warned(CREDIT, 0n)).data).toEqual({ threshold: '1', balance: '0', occurredAt: '2026-03-01T12:00:00.000Z' });
  });

  it('does not share nested objects between an event and its payload', () => {
    const event = toppedUp(CREDIT, CREDIT, 'purchase', { purchase });
    const payload = toLedgerPayload(event);
    if (payload.type !== 'CreditToppedUp') throw new Error('unexpected payload type');
    expect(payload.data.purchase).not.toBe(purchase);
  });

  it('reads balances beyond the 10^15 input limit: a running balance may get there, and a stored event must stay readable', () => {
    const rich = toppedUp(MAX_CREDITS, 2n * MAX_CREDITS, 'manual');
    expect(fromLedgerPayload(toLedgerPayload(rich))).toEqual(rich);
    const deep = consumed(MAX_CREDITS, -3n * MAX_CREDITS - 1n);
    expect(fromLedgerPayload(toLedgerPayload(deep))).toEqual(deep);
    expect(fromLedgerPayload(toLedgerPayload(warned(CREDIT, -3n * MAX_CREDITS)))).toEqual(warned(CREDIT, -3n * MAX_CREDITS));
    expect(fromLedgerPayload(toLedgerPayload(depleted(-3n * MAX_CREDITS)))).toEqual(depleted(-3n * MAX_CREDITS));
  });

  it('refuses a stored amount that is not a decimal string', () => {
    const payload = toLedgerPayload(toppedUp(CREDIT, CREDIT));
    if (payload.type !== 'CreditToppedUp') throw new Error('unexpected payload type');
    expect(() => fromLedgerPayload({ ...payload, data: { ...payload.data, credits: '1e3' } })).toThrow(InvalidAmountError);
    expect(() => fromLedgerPayload({ ...payload, data: { ...payload.data, balanceAfter: '0.0000001' } })).toThrow(InvalidAmountError);
  });
});

describe('balance streams', () => {
  it('names a balance stream by category and id, and reads the id back', () => {
    expect(balanceStreamId('bal-1')).toBe('creditBalance-bal-1');
    expect(balanceIdOfStream(balanceStreamId('a-b-c'))).toBe('a-b-c');
    expect(balanceIdOfStream('otherCategory-bal-1')).toBeUndefined();
    expect(balanceIdOfStream('$all')).toBeUndefined();
  });
});
