import { balanceStreamId, toLedgerPayload, ValidationError, type BalanceEvent, type FoldedBalance } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { foldRecorded } from '@tally/ledger';
import { UnfoldableWebhookEventError } from './webhookErrors';
import { createWebhookRecorder } from './webhookRecorder';
import type { NewWebhookDelivery, WebhookEndpoint } from './webhookStore';

const BALANCE = 'b-1';
const t0 = new Date('2026-12-01T00:00:00Z');
const opened: BalanceEvent = {
  type: 'CreditBalanceOpened',
  balanceId: BALANCE,
  customerId: 'c-1',
  productId: 'p-1',
  name: 'Main',
  lowBalanceThreshold: null,
  overdraftLimit: 0n,
  occurredAt: t0.toISOString(),
};
const toppedUp = (credits: bigint, balanceAfter: bigint): BalanceEvent => ({
  type: 'CreditToppedUp',
  credits,
  source: 'manual',
  reason: null,
  balanceAfter,
  heldAfter: 0n,
  purchase: null,
  grant: null,
  refund: null,
  occurredAt: t0.toISOString(),
});
const stored = (revision: bigint, payload: { readonly type: string; readonly data: object }): RecordedEvent => ({
  id: `event-${revision}`,
  streamId: balanceStreamId(BALANCE),
  revision,
  position: 100n + revision,
  type: payload.type,
  data: payload.data as RecordedEvent['data'],
  metadata: {},
  recordedAt: t0,
});
const consumed = (credits: bigint, balanceAfter: bigint): BalanceEvent => ({
  type: 'CreditConsumed',
  credits,
  source: 'usage',
  reason: null,
  usage: null,
  balanceAfter,
  heldAfter: 0n,
  occurredAt: t0.toISOString(),
});
const endpoint = { id: 'e-1', afterPosition: 0n, events: ['credit_balance.topped_up', 'hold.expired'] } as unknown as WebhookEndpoint;

function recorderOver(at: (balanceId: string, revision: bigint) => Promise<FoldedBalance>) {
  const recorded: NewWebhookDelivery[] = [];
  const record = createWebhookRecorder({
    store: { allEndpoints: async () => [endpoint], recordDeliveries: async (deliveries) => void recorded.push(...deliveries) },
    balanceStates: { at },
    clock: () => t0,
  });
  return { record, recorded };
}

describe('the webhook recorder, on an event it cannot fold', () => {
  /** The ledger's balance states over a stream: its events up to a revision, folded by the ledger. */
  const ledgerOver = (stream: readonly RecordedEvent[]) => async (_balanceId: string, revision: bigint) => foldRecorded(stream.filter((event) => event.revision <= revision));
  const openedEvent = stored(0n, toLedgerPayload(opened));

  it('records a top-up folded onto the state before it', async () => {
    const events = [stored(1n, toLedgerPayload(toppedUp(1_000_000n, 1_000_000n)))];
    const { record, recorded } = recorderOver(ledgerOver([openedEvent, ...events]));
    expect(await record(events)).toBe(1);
    expect(JSON.parse(recorded[0]!.body)).toMatchObject({ type: 'credit_balance.topped_up', data: { balance: { balance: '1' } } });
  });

  it("names an event of a type this release does not know (a newer release's), for the deliverer to wait it out", async () => {
    const events = [stored(1n, toLedgerPayload(toppedUp(1_000_000n, 1_000_000n))), stored(2n, { type: 'CreditTeleported', data: {} })];
    const { record } = recorderOver(ledgerOver([openedEvent, ...events]));
    const failure = record(events);
    await expect(failure).rejects.toBeInstanceOf(UnfoldableWebhookEventError);
    await expect(failure).rejects.toThrow(/event-2 \(CreditTeleported, creditBalance-b-1@2, position 102\) cannot be decoded/);
  });

  it('names an event whose amount this release refuses', async () => {
    const refused = toLedgerPayload(toppedUp(1_000_000n, 1_000_000n));
    const events = [stored(1n, { ...refused, data: { ...refused.data, credits: '1.0000001' } })];
    const { record } = recorderOver(ledgerOver([openedEvent, ...events]));
    const failure = record(events);
    await expect(failure).rejects.toBeInstanceOf(UnfoldableWebhookEventError);
    await expect(failure).rejects.toThrow(/event-1 \(CreditToppedUp, creditBalance-b-1@1, position 101\) cannot be decoded/);
  });

  it('names a HoldExpired for a hold the stream never opened as not folded', async () => {
    const expired: BalanceEvent = { type: 'HoldExpired', holdId: 'h-1', credits: 1n, expiresAt: t0.toISOString(), balanceAfter: 0n, heldAfter: 0n, occurredAt: t0.toISOString() };
    const events = [stored(1n, toLedgerPayload(expired))];
    const { record } = recorderOver(ledgerOver([openedEvent, ...events]));
    const failure = record(events);
    await expect(failure).rejects.toBeInstanceOf(UnfoldableWebhookEventError);
    await expect(failure).rejects.toThrow(/event-1 \(HoldExpired, creditBalance-b-1@1, position 101\) cannot be folded/);
  });

  it('names an event of an unknown type even where nothing is folded (no state held, no webhook)', async () => {
    const events = [stored(5n, { type: 'CreditTeleported', data: {} })];
    const { record } = recorderOver(async () => Promise.reject(new Error('not read')));
    await expect(record(events)).rejects.toThrow(/event-5 \(CreditTeleported, creditBalance-b-1@5, position 105\) cannot be decoded/);
  });

  it('does not take a refusal from reading the balance for one of the event (it is not waited out: the deliverer fails)', async () => {
    const refused = new ValidationError('a stored state this release refuses');
    const { record } = recorderOver(async () => Promise.reject(refused));
    await expect(record([stored(1n, toLedgerPayload(toppedUp(1_000_000n, 1_000_000n)))])).rejects.toBe(refused);
  });
});

describe('the webhook recorder, on the hot path', () => {
  it('does not decode an event that raises no webhook while it holds no state of its balance (a usage charge)', async () => {
    // An amount this release refuses: decoding it would throw, so recording nothing shows it was not decoded.
    const refused = toLedgerPayload(consumed(1_000_000n, 0n));
    const events = [stored(7n, { ...refused, data: { ...refused.data, credits: '1.0000001' } })];
    const { record, recorded } = recorderOver(async () => Promise.reject(new Error('not read')));
    expect(await record(events)).toBe(0);
    expect(recorded).toEqual([]);
  });

  it("asks the ledger for the balance at the event's own revision (where a command's snapshot is), once per batch", async () => {
    const stream = [
      stored(0n, toLedgerPayload(opened)),
      stored(1n, toLedgerPayload(toppedUp(1_000_000n, 1_000_000n))),
      stored(2n, toLedgerPayload(consumed(250_000n, 750_000n))),
      stored(3n, toLedgerPayload(toppedUp(1_000_000n, 1_750_000n))),
    ];
    const asked: bigint[] = [];
    const { record, recorded } = recorderOver(async (_balanceId, revision) => {
      asked.push(revision);
      return foldRecorded(stream.filter((event) => event.revision <= revision));
    });
    expect(await record(stream.slice(1))).toBe(2);
    expect(asked).toEqual([1n]);
    // The usage charge between them is folded onto the state held: the second top-up's balance counts it.
    expect(recorded.map((delivery) => JSON.parse(delivery.body).data.balance.balance)).toEqual(['1', '1.75']);
  });
});
