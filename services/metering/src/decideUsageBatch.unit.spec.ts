import { balanceStreamId, type BalanceState, type Micros, type UsageEvent, type FoldedBalance } from '@tally/domain';
import { commandIds, ledgerEventId } from '@tally/ledger';
import { decideUsageBatch } from './decideUsageBatch';
import type { UsageCharge } from './priceUsageBatch';

const CREDIT = 1_000_000n;
const AT = '2026-03-01T12:00:00.000Z';

const usage = (id: string, customerId = 'alice', properties: UsageEvent['properties'] = {}): UsageEvent => ({
  id,
  customerId,
  event: 'api_call',
  timestamp: Date.UTC(2026, 2, 1, 11),
  properties,
});

const charge = (index: number, usageId: string, balanceId: string, credits: Micros, customerId = 'alice'): UsageCharge => {
  const commandId = commandIds.usage(usageId, balanceId);
  return {
    index,
    balance: { balanceId, customerId, productId: 'api' },
    credits,
    quantity: '1',
    commandId,
    firstEventId: ledgerEventId(commandId, 0),
  };
};

const open = (balanceId: string, balance: Micros, revision: bigint, threshold: Micros | null = null): FoldedBalance => {
  const state: BalanceState = {
    status: 'open',
    balanceId,
    customerId: 'alice',
    productId: 'api',
    name: 'API credits',
    lowBalanceThreshold: threshold,
    balance,
    held: 0n,
    holds: {},
    overdraftLimit: 0n,
    warned: false,
    updatedAt: AT,
  };
  return { state, revision };
};

describe('decideUsageBatch', () => {
  it('settles the hold a usage event names in its holdId property, in the same append as the charge', () => {
    const base = open('a', 10n * CREDIT, 2n);
    const holding: FoldedBalance = {
      state: { ...(base.state as Extract<BalanceState, { status: 'open' }>), held: 4n * CREDIT, holds: { 'a:job': { credits: 4n * CREDIT, expiresAt: AT, reference: null } } },
      revision: 2n,
    };
    const decision = decideUsageBatch({
      usages: [usage('u1', 'alice', { holdId: 'a:job' }), usage('u2', 'alice', { holdId: 'a:job' })],
      charges: [charge(0, 'u1', 'a', 3n * CREDIT), charge(1, 'u2', 'a', CREDIT)],
      applied: new Set(),
      states: new Map([['a', holding]]),
      at: AT,
    });
    const [a] = decision.appends;
    expect(a!.request.events.map((event) => [event.type, event.data.credits])).toEqual([
      ['CreditConsumed', '3'],
      ['HoldReleased', '4'],
      // The second usage names a hold the first one freed: charged all the same, nothing more freed.
      ['CreditConsumed', '1'],
    ]);
    expect(a!.request.events[1]!.data).toMatchObject({ usageEventId: 'u1', heldAfter: '0' });
    expect(a!.after.state).toMatchObject({ balance: 6n * CREDIT, held: 0n, holds: {} });
  });

  it('appends every charge of a balance in one request, in batch order, with the expected revision', () => {
    const usages = [usage('u1'), usage('u2'), usage('u3', 'bob')];
    const decision = decideUsageBatch({
      usages,
      charges: [charge(0, 'u1', 'a', 2n * CREDIT), charge(1, 'u2', 'a', 3n * CREDIT), charge(2, 'u3', 'b', CREDIT, 'bob')],
      applied: new Set(),
      states: new Map([
        ['a', open('a', 10n * CREDIT, 4n)],
        ['b', open('b', 1n * CREDIT, 1n)],
      ]),
      at: AT,
    });
    expect(decision.skips).toEqual([]);
    expect(decision.matched).toHaveLength(3);
    const [a, b] = decision.appends;
    expect(a!.request.streamId).toBe(balanceStreamId('a'));
    expect(a!.request.expectedRevision).toBe(4n);
    expect(a!.request.events.map((event) => [event.type, event.data.credits, event.data.balanceAfter])).toEqual([
      ['CreditConsumed', '2', '8'],
      ['CreditConsumed', '3', '5'],
    ]);
    expect(a!.request.events[0]!.id).toBe(ledgerEventId(commandIds.usage('u1', 'a'), 0));
    expect(a!.request.events[0]!.data.usage).toEqual({ eventId: 'u1', event: 'api_call', timestamp: '2026-03-01T11:00:00.000Z', quantity: '1' });
    // The charge's causation is derived from its usage id and balance, not stored (issue 11 §5).
    expect(a!.request.events[0]!.metadata).toMatchObject({ balanceId: 'a', customerId: 'alice' });
    expect(a!.request.events[0]!.metadata).not.toHaveProperty('causationId');
    expect(b!.request.events[1]!.metadata).toMatchObject({ causationId: commandIds.usage('u3', 'b') });
    expect(a!.after).toMatchObject({ revision: 6n, state: { balance: 5n * CREDIT } });
    // Crossing zero: the depletion is part of the same request.
    expect(b!.request.events.map((event) => event.type)).toEqual(['CreditConsumed', 'CreditBalanceDepleted']);
    expect(b!.request.events[1]!.id).toBe(ledgerEventId(commandIds.usage('u3', 'b'), 1));
    expect(b!.after.revision).toBe(3n);
  });

  it('warns once per crossing of the threshold within a batch', () => {
    const usages = [usage('u1'), usage('u2'), usage('u3')];
    const decision = decideUsageBatch({
      usages,
      charges: [charge(0, 'u1', 'a', 3n * CREDIT), charge(1, 'u2', 'a', CREDIT), charge(2, 'u3', 'a', CREDIT)],
      applied: new Set(),
      states: new Map([['a', open('a', 10n * CREDIT, 1n, 8n * CREDIT)]]),
      at: AT,
    });
    expect(decision.appends[0]!.request.events.map((event) => event.type)).toEqual([
      'CreditConsumed',
      'LowBalanceWarned',
      'CreditConsumed',
      'CreditConsumed',
    ]);
    expect(decision.appends[0]!.after.state).toMatchObject({ balance: 5n * CREDIT, warned: true });
  });

  it('skips charges already stored and the same usage event twice in one batch', () => {
    const usages = [usage('u1'), usage('u2'), usage('u2')];
    const charges = [charge(0, 'u1', 'a', CREDIT), charge(1, 'u2', 'a', CREDIT), charge(2, 'u2', 'a', CREDIT)];
    const decision = decideUsageBatch({
      usages,
      charges,
      applied: new Set([charges[0]!.firstEventId]),
      states: new Map([['a', open('a', 10n * CREDIT, 7n)]]),
      at: AT,
    });
    expect(decision.skips).toEqual([
      { index: 0, reason: 'already_applied', balanceId: 'a' },
      { index: 2, reason: 'already_applied', balanceId: 'a' },
    ]);
    expect(decision.matched.map((c) => c.index)).toEqual([1]);
    expect(decision.appends[0]!.request.events).toHaveLength(1);
  });

  it('skips balances whose stream does not exist yet, and appends nothing when nothing is left', () => {
    const decision = decideUsageBatch({
      usages: [usage('u1')],
      charges: [charge(0, 'u1', 'a', CREDIT)],
      applied: new Set(),
      states: new Map([['a', { state: { status: 'unopened' }, revision: -1n }]]),
      at: AT,
    });
    expect(decision).toEqual({ appends: [], skips: [{ index: 0, reason: 'balance_not_opened', balanceId: 'a' }], matched: [] });
  });
});
