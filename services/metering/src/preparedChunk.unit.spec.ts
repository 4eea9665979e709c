import { balanceStreamId, creditProductFromDto, type CreditProduct, type UsageEvent } from '@tally/domain';
import type { RecordedEvent } from '@tally/event-store';
import { commandIds, ledgerEventId, meteredUsageMarker } from '@tally/ledger';
import type { KafkaMessage } from 'kafkajs';
import { UndecodableUsageEventError } from './meteringErrors';
import { earlierRunCandidates, preparedBefore, type Prepared } from './preparedChunk';
import { priceUsageBatch } from './priceUsageBatch';

const api: CreditProduct = creditProductFromDto({
  id: 'api',
  name: 'API',
  description: '',
  consumption: [
    { event: 'api_call', credits: '1' },
    { event: 'tokens', credits: '0.000002', perUnitOf: 'count' },
  ],
  lowBalanceThreshold: null,
  bundles: [],
});
const byCustomer = new Map([
  ['alice', [{ id: 'a-api', customerId: 'alice', productId: 'api' }]],
  ['bob', [{ id: 'b-api', customerId: 'bob', productId: 'api' }]],
]);

/** A message at `offset`: a usage event, or bytes that do not decode. */
type Input = { readonly offset: number; readonly usage: UsageEvent } | { readonly offset: number; readonly junk: true };
const usage = (offset: number, id: string, customerId: string, event = 'api_call', properties: UsageEvent['properties'] = {}): Input => ({
  offset,
  usage: { id, customerId, event, timestamp: Date.UTC(2026, 2, 1), properties },
});
const junk = (offset: number): Input => ({ offset, junk: true });
const message = (offset: number) => ({ offset: String(offset), key: null, value: null, timestamp: '0', attributes: 0, headers: {} }) as unknown as KafkaMessage;

/** What earlier runs left in the store: markers recorded, and charges stored without one. */
const charged = (usageId: string, balanceId: string) =>
  ({ id: ledgerEventId(commandIds.usage(usageId, balanceId), 0), streamId: balanceStreamId(balanceId) }) as unknown as RecordedEvent;
const store = {
  markers: new Set([meteredUsageMarker('alice', 'u1'), meteredUsageMarker('bob', 'u6'), meteredUsageMarker('alice', 'elsewhere')]),
  events: [charged('u2', 'a-api'), charged('u7', 'b-api'), charged('elsewhere', 'a-api')],
};

/** The consumer's stateless stage (prepare) over fakes of its reads, with or without its earlier runs. */
function stage(inputs: readonly Input[], readEarlier: boolean): Prepared {
  const decoded = inputs.flatMap((input) => ('usage' in input ? [{ message: message(input.offset), usage: input.usage }] : []));
  const rejected = inputs.flatMap((input) => ('junk' in input ? [{ message: message(input.offset), error: new UndecodableUsageEventError('junk') }] : []));
  const usages = decoded.map((item) => item.usage);
  const priced = priceUsageBatch(usages, byCustomer, new Map([['api', api]]));
  const invalid = new Set(priced.invalid.map(({ index }) => index));
  // What the consumer's read asks for (earlierRunCandidates, the one rule), answered by the fake store.
  const candidates = earlierRunCandidates(usages, priced, invalid);
  const ids = new Set(candidates.eventIds);
  const earlier = readEarlier
    ? { metered: new Set(candidates.markers.filter((marker) => store.markers.has(marker))), storedCharges: store.events.filter((event) => ids.has(event.id)) }
    : undefined;
  return { decoded, rejected, usages, priced, invalid, earlier };
}

describe('preparedBefore', () => {
  const chunk: Input[] = [
    junk(10),
    usage(11, 'u1', 'alice'),
    usage(12, 'u2', 'alice'),
    usage(13, 'u3', 'carol'),
    // A per-unit rule without its quantity: invalid.
    usage(14, 'u4', 'bob', 'tokens'),
    junk(15),
    usage(16, 'u5', 'bob', 'unknown_event'),
    usage(17, 'u6', 'bob'),
    usage(18, 'u7', 'bob', 'tokens', { count: 500_000 }),
    usage(19, 'u1', 'alice'),
  ];

  it('is, for every count, what preparing the messages before that usage event gives', () => {
    const whole = stage(chunk, true);
    for (let count = 0; count <= whole.decoded.length; count += 1) {
      const bound = whole.decoded[count]?.message.offset;
      const before = chunk.filter(({ offset }) => bound === undefined || offset < Number(bound));
      expect(preparedBefore(whole, count)).toEqual(stage(before, true));
      expect(preparedBefore(stage(chunk, false), count)).toEqual(stage(before, false));
    }
  });

  it('keeps the charges, skips, invalid usage, rejects and earlier runs of the messages before, and none of the rest', () => {
    const whole = stage(chunk, true);
    // Before u6 (offset 17): five usage events and the two rejects among them.
    const before = preparedBefore(whole, 5);
    expect(before.decoded.map(({ message: { offset } }) => offset)).toEqual(['11', '12', '13', '14', '16']);
    expect(before.rejected.map(({ message: { offset } }) => offset)).toEqual(['10', '15']);
    expect(before.priced.charges.map(({ index, balance }) => [index, balance.balanceId])).toEqual([
      [0, 'a-api'],
      [1, 'a-api'],
    ]);
    expect(before.priced.skips).toEqual([
      { index: 2, reason: 'no_balance' },
      { index: 4, reason: 'no_matching_rule', balanceId: 'b-api' },
    ]);
    expect(before.priced.invalid.map(({ index }) => index)).toEqual([3]);
    expect(before.invalid).toEqual(new Set([3]));
    expect(before.earlier).toEqual({ metered: new Set([meteredUsageMarker('alice', 'u1')]), storedCharges: [charged('u2', 'a-api')] });
    // The whole chunk's, for contrast: what the slice left out was there.
    expect(whole.earlier!.metered).toEqual(new Set([meteredUsageMarker('alice', 'u1'), meteredUsageMarker('bob', 'u6')]));
    expect(whole.earlier!.storedCharges).toEqual([charged('u2', 'a-api'), charged('u7', 'b-api')]);
    expect(whole.priced.charges.map(({ index }) => index)).toEqual([0, 1, 5, 6, 7]);
  });
});

describe('earlierRunCandidates', () => {
  it('asks, each once, for the markers of the usage not invalid and the first event ids of its charges', () => {
    const usages = [usage(1, 'u1', 'alice'), usage(2, 'u4', 'bob', 'tokens'), usage(3, 'u1', 'alice'), usage(4, 'u3', 'carol'), usage(5, 'u7', 'bob', 'tokens', { count: 1 })].map(
      (input) => ('usage' in input ? input.usage : undefined)!,
    );
    const priced = priceUsageBatch(usages, byCustomer, new Map([['api', api]]));
    const invalid = new Set(priced.invalid.map(({ index }) => index));
    expect(invalid).toEqual(new Set([1]));
    expect(earlierRunCandidates(usages, priced, invalid)).toEqual({
      markers: [meteredUsageMarker('alice', 'u1'), meteredUsageMarker('carol', 'u3'), meteredUsageMarker('bob', 'u7')],
      eventIds: [commandIds.usage('u1', 'a-api'), commandIds.usage('u7', 'b-api')].map((id) => ledgerEventId(id, 0)),
    });
  });
});
