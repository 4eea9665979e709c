import { balanceStreamId, BalanceNotOpenError, creditProductFromDto, type BalanceState, type Micros, type UsageEvent, type FoldedBalance } from '@tally/domain';
import type { AppendManyOptions, AppendRequest, EventStore } from '@tally/event-store';
import { commandIds, createBalanceCommandPath, ledgerEventId, type BalanceStates } from '@tally/ledger';
import pino from 'pino';
import { priceUsageBatch, type UsageCharge } from './priceUsageBatch';
import { usageCommands } from './usageCommands';

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

/**
 * The consumer's charges as the one command path decides them (what decideUsageBatch did before
 * the consumer moved onto the path): the event store is a recorder of append requests, the
 * states are given, as the consumer's optimistic calls use them (no I/O).
 */
async function decideUsage(input: { usages: readonly UsageEvent[]; charges: readonly UsageCharge[]; states: ReadonlyMap<string, FoldedBalance> }) {
  const appends: { requests: readonly AppendRequest[]; options: AppendManyOptions | undefined }[] = [];
  const eventStore: Pick<EventStore, 'appendMany' | 'appendExclusively' | 'readEventsById'> = {
    async appendMany(requests, options) {
      appends.push({ requests, options });
      return requests.map((request, i) => ({
        streamId: request.streamId,
        nextExpectedRevision: (request.expectedRevision as bigint) + BigInt(request.events.length),
        position: BigInt(i),
        idempotent: false,
      }));
    },
    appendExclusively: () => Promise.reject(new Error('no conflicts here')),
    readEventsById: () => Promise.reject(new Error('the consumer checked earlier runs itself')),
  };
  const states: BalanceStates = {
    current: () => Promise.reject(new Error('an optimistic call reads no tail without a conflict')),
    at: () => Promise.reject(new Error('no replays here')),
    flush: async () => ({ kept: 0, behind: 0 }),
    loadMany: async (balanceIds) => new Map(balanceIds.flatMap((id) => (input.states.has(id) ? [[id, input.states.get(id)!] as const] : []))),
    written: async () => {},
    forget: () => {},
    close: async () => {},
  };
  const path = createBalanceCommandPath({ eventStore, states, logger: pino({ level: 'silent' }) });
  const outcomes = await path.execute(usageCommands(input.usages, input.charges, AT), {
    markers: ['m'],
    earlierRunsChecked: true,
    withEvents: false,
    optimistic: true,
  });
  return { appends, outcomes, requests: appends.flatMap((append) => append.requests) };
}

describe('usage charges on the one command path', () => {
  it('settles the hold a usage event names in its holdId property, in the same append as the charge', async () => {
    const base = open('a', 10n * CREDIT, 2n);
    const holding: FoldedBalance = {
      state: { ...(base.state as Extract<BalanceState, { status: 'open' }>), held: 4n * CREDIT, holds: { 'a:job': { credits: 4n * CREDIT, expiresAt: AT, reference: null } } },
      revision: 2n,
    };
    const { requests, outcomes } = await decideUsage({
      usages: [usage('u1', 'alice', { holdId: 'a:job' }), usage('u2', 'alice', { holdId: 'a:job' })],
      charges: [charge(0, 'u1', 'a', 3n * CREDIT), charge(1, 'u2', 'a', CREDIT)],
      states: new Map([['a', holding]]),
    });
    const [a] = requests;
    expect(a!.events.map((event) => [event.type, event.data.credits])).toEqual([
      ['CreditConsumed', '3'],
      ['HoldReleased', '4'],
      // The second usage names a hold the first one freed: charged all the same, nothing more freed.
      ['CreditConsumed', '1'],
    ]);
    expect(a!.events[1]!.data).toMatchObject({ usageEventId: 'u1', heldAfter: '0' });
    const last = outcomes[1]!;
    expect(last.ok && last.state).toMatchObject({ balance: 6n * CREDIT, held: 0n, holds: {} });
  });

  it('frees the named hold for usage that costs its balance nothing (zero cost, no matching rule), priced as the consumer prices it', async () => {
    const product = creditProductFromDto({
      id: 'api',
      name: 'API credits',
      description: '',
      consumption: [{ event: 'api_call', credits: '1', perUnitOf: 'calls' }],
      lowBalanceThreshold: null,
      bundles: [],
    });
    const base = open('a', 10n * CREDIT, 2n);
    const holding: FoldedBalance = {
      state: {
        ...(base.state as Extract<BalanceState, { status: 'open' }>),
        held: 6n * CREDIT,
        holds: { 'a:job': { credits: 4n * CREDIT, expiresAt: AT, reference: null }, 'a:other': { credits: 2n * CREDIT, expiresAt: AT, reference: null } },
      },
      revision: 2n,
    };
    const usages = [usage('u1', 'alice', { calls: 0, holdId: 'a:job' }), { ...usage('u2', 'alice', { holdId: 'a:other' }), event: 'unpriced' }];
    const priced = priceUsageBatch(usages, new Map([['alice', [{ id: 'a', customerId: 'alice', productId: 'api' }]]]), new Map([['api', product]]));
    const { requests, outcomes } = await decideUsage({ usages, charges: priced.charges, states: new Map([['a', holding]]) });
    expect(requests[0]!.events.map((event) => [event.type, event.data.holdId, event.data.credits])).toEqual([
      ['HoldReleased', 'a:job', '4'],
      ['HoldReleased', 'a:other', '2'],
    ]);
    // Deterministic ids, as a charge's: a redelivery finds them stored (or the usage marked) and adds nothing.
    expect(requests[0]!.events[0]!.id).toBe(ledgerEventId(commandIds.usage('u1', 'a'), 0));
    expect(outcomes[1]!.ok && outcomes[1]!.state).toMatchObject({ balance: 10n * CREDIT, held: 0n, holds: {} });
  });

  it('appends every charge of a balance in one request, in batch order, with the expected revision, and the markers with them', async () => {
    const usages = [usage('u1'), usage('u2'), usage('u3', 'bob')];
    const { appends, requests, outcomes } = await decideUsage({
      usages,
      charges: [charge(0, 'u1', 'a', 2n * CREDIT), charge(1, 'u2', 'a', 3n * CREDIT), charge(2, 'u3', 'b', CREDIT, 'bob')],
      states: new Map([
        ['a', open('a', 10n * CREDIT, 4n)],
        ['b', open('b', 1n * CREDIT, 1n)],
      ]),
    });
    expect(outcomes.map((outcome) => outcome.ok && !outcome.replayed)).toEqual([true, true, true]);
    expect(appends).toHaveLength(1);
    expect(appends[0]!.options).toEqual({ markers: ['m'] });
    const [a, b] = requests;
    expect(a!.streamId).toBe(balanceStreamId('a'));
    expect(a!.expectedRevision).toBe(4n);
    expect(a!.events.map((event) => [event.type, event.data.credits, event.data.balanceAfter])).toEqual([
      ['CreditConsumed', '2', '8'],
      ['CreditConsumed', '3', '5'],
    ]);
    expect(a!.events[0]!.id).toBe(ledgerEventId(commandIds.usage('u1', 'a'), 0));
    expect(a!.events[0]!.data.usage).toEqual({ eventId: 'u1', event: 'api_call', timestamp: '2026-03-01T11:00:00.000Z', quantity: '1' });
    // The charge's causation is derived from its usage id and balance, not stored (issue 11 §5).
    expect(a!.events[0]!.metadata).toMatchObject({ balanceId: 'a', customerId: 'alice' });
    expect(a!.events[0]!.metadata).not.toHaveProperty('causationId');
    expect(b!.events[1]!.metadata).toMatchObject({ causationId: commandIds.usage('u3', 'b') });
    const second = outcomes[1]!;
    expect(second.ok && { revision: second.revision, balance: second.state.status === 'open' && second.state.balance }).toEqual({ revision: 6n, balance: 5n * CREDIT });
    // Crossing zero: the depletion is part of the same request.
    expect(b!.events.map((event) => event.type)).toEqual(['CreditConsumed', 'CreditBalanceDepleted']);
    expect(b!.events[1]!.id).toBe(ledgerEventId(commandIds.usage('u3', 'b'), 1));
    expect(outcomes[2]!.ok && outcomes[2]!.revision).toBe(3n);
    expect(outcomes.map((outcome) => outcome.ok && outcome.appended)).toEqual([1, 1, 2]);
  });

  it('warns once per crossing of the threshold within a batch', async () => {
    const usages = [usage('u1'), usage('u2'), usage('u3')];
    const { requests, outcomes } = await decideUsage({
      usages,
      charges: [charge(0, 'u1', 'a', 3n * CREDIT), charge(1, 'u2', 'a', CREDIT), charge(2, 'u3', 'a', CREDIT)],
      states: new Map([['a', open('a', 10n * CREDIT, 1n, 8n * CREDIT)]]),
    });
    expect(requests[0]!.events.map((event) => event.type)).toEqual(['CreditConsumed', 'LowBalanceWarned', 'CreditConsumed', 'CreditConsumed']);
    expect(outcomes[2]!.ok && outcomes[2]!.state).toMatchObject({ balance: 5n * CREDIT, warned: true });
  });

  it('records the markers alone when no charge is left (usage that charges nothing is metered too)', async () => {
    const { appends, outcomes } = await decideUsage({ usages: [usage('u1')], charges: [], states: new Map() });
    expect(outcomes).toEqual([]);
    expect(appends).toEqual([{ requests: [], options: { markers: ['m'] } }]);
  });

  it('refuses a charge on a balance whose stream does not exist yet (the consumer waits for openings before)', async () => {
    const unopened: FoldedBalance = { state: { status: 'unopened' }, revision: -1n };
    // Decided on a state read in this call (not held from before), the refusal stands at once.
    const states: BalanceStates = {
      current: async () => unopened,
      at: () => Promise.reject(new Error('no replays here')),
      flush: async () => ({ kept: 0, behind: 0 }),
      loadMany: async () => new Map([['a', unopened]]),
      written: async () => {},
      forget: () => {},
      close: async () => {},
    };
    const appended: AppendRequest[][] = [];
    const path = createBalanceCommandPath({
      eventStore: {
        appendMany: async (requests) => {
          appended.push([...requests]);
          return [];
        },
        appendExclusively: () => Promise.reject(new Error('no conflicts here')),
        readEventsById: async () => [],
      },
      states,
      logger: pino({ level: 'silent' }),
    });
    const outcomes = await path.execute(usageCommands([usage('u1')], [charge(0, 'u1', 'a', CREDIT)], AT), { earlierRunsChecked: true, withEvents: false, optimistic: true });
    expect(outcomes).toHaveLength(1);
    expect(!outcomes[0]!.ok && outcomes[0]!.error).toBeInstanceOf(BalanceNotOpenError);
    expect(appended).toEqual([]);
  });
});
