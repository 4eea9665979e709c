import { LedgerEventPayloadV1 } from '@tally/schemas';
import fc from 'fast-check';
import { BalanceCommand, BalanceEvent, BalanceState, decide, evolve, foldBalance, initialBalanceState, MAX_OPEN_HOLDS, OpenBalance } from './balance';
import { MAX_CREDITS, Micros } from './credits';
import { fromLedgerPayload, toLedgerPayload } from './ledgerEventCodec';
import { InsufficientCreditsError, TooManyOpenHoldsError } from './errors';
import {
  AT,
  captureHold,
  changeSettings,
  consumeUsage,
  CREDIT,
  deductManually,
  held,
  refundConsumption,
  expireHold,
  openBalance,
  placeHold,
  releaseHold,
  topUp,
  USAGE,
} from './testing/balanceFixtures';

/**
 * Property-based tests of the balance decider: random command sequences from an opened
 * balance, checked against the ledger's invariants and against a model computed here,
 * independently of decide/evolve.
 */

// Amounts on the scale of the thresholds, so that sequences cross them often; mostly whole
// credits, so that a balance lands exactly on a threshold or on zero now and then; and a
// single micro-credit or a huge amount (up to the 10^15 input limit) from time to time.
const wholeCredits = (max: bigint, min = 1n) => fc.bigInt({ min, max }).map((n) => n * CREDIT);
const amount = fc.oneof(
  { weight: 8, arbitrary: wholeCredits(30n) },
  { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 30n * CREDIT }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: 3n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: MAX_CREDITS }) },
);
const threshold = fc.option(fc.oneof(wholeCredits(40n, 0n), fc.bigInt({ min: 0n, max: 40n * CREDIT })), {
  nil: null,
  freq: 4,
});

const command: fc.Arbitrary<BalanceCommand> = fc.oneof(
  fc
    .tuple(amount, fc.constantFrom('manual' as const, 'purchase' as const, 'grant' as const))
    .map(([credits, source]) => topUp(credits, { source })),
  { weight: 3, arbitrary: fc.oneof(amount, fc.constant(0n)).map((credits) => consumeUsage(credits, USAGE)) },
  amount.map((credits) => deductManually(credits)),
  // A refund of at most what its charge took (the ledger reads the charge; here it is made up).
  fc.tuple(amount, amount).map(([a, b]) => refundConsumption('charge-1', a > b ? a : b, a < b ? a : b)),
  fc
    .record(
      { name: fc.constantFrom('API credits', 'Tokens', 'Renamed'), lowBalanceThreshold: threshold, overdraftLimit: fc.oneof(fc.constant(0n), wholeCredits(20n)) },
      { requiredKeys: [] },
    )
    .map((settings) => changeSettings(settings)),
);

const scenario = fc.record({
  startingBalance: fc.oneof(fc.constant(0n), wholeCredits(60n), fc.bigInt({ min: 0n, max: 60n * CREDIT })),
  lowBalanceThreshold: threshold,
  commands: fc.array(command, { maxLength: 60 }),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

interface Step {
  readonly command: BalanceCommand;
  readonly events: BalanceEvent[];
  readonly state: OpenBalance;
}

function asOpen(state: BalanceState): OpenBalance {
  if (state.status !== 'open') throw new Error('expected an open balance');
  return state;
}

/** Runs a scenario through decide + evolve, one command at a time, as the ledger does. */
function run({ startingBalance, lowBalanceThreshold, commands }: Scenario) {
  const open = openBalance({ startingBalance, lowBalanceThreshold });
  const openEvents = decide(open, initialBalanceState);
  let state = asOpen(openEvents.reduce(evolve, initialBalanceState));
  const steps: Step[] = [{ command: open, events: openEvents, state }];
  for (const next of commands) {
    const events = decide(next, state);
    state = asOpen(events.reduce(evolve, state as BalanceState));
    steps.push({ command: next, events, state });
  }
  return { steps, state, events: steps.flatMap((step) => step.events) };
}

const count = (events: readonly BalanceEvent[], type: BalanceEvent['type']) => events.filter((e) => e.type === type).length;

describe('balance decider properties', () => {
  it('(1) balance = starting + Σ top-ups − Σ consumption, counted from the commands', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { state, events } = run(input);
        let expected = input.startingBalance;
        for (const c of input.commands) {
          if (c.type === 'TopUp' || c.type === 'RefundConsumption') expected += c.credits;
          if (c.type === 'ConsumeUsage' || c.type === 'DeductManually') expected -= c.credits;
        }
        expect(state.balance).toBe(expected);
        // And the same sum counted from the ledger events.
        const fromEvents = events.reduce(
          (sum, e) => (e.type === 'CreditToppedUp' ? sum + e.credits : e.type === 'CreditConsumed' ? sum - e.credits : sum),
          0n,
        );
        expect(fromEvents).toBe(expected);
      }),
    );
  });

  it('(2) the balance-after chain is continuous and starts at the starting balance', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { events, state } = run(input);
        const changes = events.filter((e) => e.type === 'CreditToppedUp' || e.type === 'CreditConsumed');
        if (input.startingBalance > 0n) {
          expect(changes[0]).toMatchObject({ type: 'CreditToppedUp', source: 'starting', balanceAfter: input.startingBalance });
        } else {
          expect(changes.some((e) => e.type === 'CreditToppedUp' && e.source === 'starting')).toBe(false);
        }
        let previous = 0n;
        for (const e of changes) {
          expect(e.credits > 0n).toBe(true);
          expect(e.balanceAfter).toBe(e.type === 'CreditToppedUp' ? previous + e.credits : previous - e.credits);
          previous = e.balanceAfter;
        }
        expect(previous).toBe(state.balance);
      }),
    );
  });

  it('(3) one LowBalanceWarned per crossing, and one CreditBalanceDepleted per fall from above zero', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { steps } = run(input);
        // The model: a balance, a threshold and whether a warning is outstanding.
        let balance = 0n;
        let limit: Micros | null = input.lowBalanceThreshold;
        let outstanding = false;
        let crossings = 0;
        let falls = 0;
        for (const { command: c, events } of steps) {
          const before = balance;
          if (c.type === 'OpenBalance') balance = c.startingBalance;
          if (c.type === 'TopUp' || c.type === 'RefundConsumption') balance += c.credits;
          if (c.type === 'ConsumeUsage' || c.type === 'DeductManually') balance -= c.credits;
          if (c.type === 'ChangeSettings' && c.lowBalanceThreshold !== undefined) limit = c.lowBalanceThreshold;
          const below = limit !== null && balance < limit;
          const warnings = events.filter((e) => e.type === 'LowBalanceWarned');
          if (below && !outstanding) {
            crossings += 1;
            expect(warnings).toEqual([{ type: 'LowBalanceWarned', threshold: limit, balance, occurredAt: AT }]);
          } else {
            expect(warnings).toEqual([]);
          }
          outstanding = below;
          const fell = before > 0n && balance <= 0n;
          if (fell) falls += 1;
          expect(events.filter((e) => e.type === 'CreditBalanceDepleted')).toEqual(
            fell ? [{ type: 'CreditBalanceDepleted', balance, occurredAt: AT }] : [],
          );
        }
        const all = steps.flatMap((step) => step.events);
        expect(count(all, 'LowBalanceWarned')).toBe(crossings);
        expect(count(all, 'CreditBalanceDepleted')).toBe(falls);
      }),
    );
  });

  it('(3) no two warnings without the balance back at or above the threshold in between, read from the events alone', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { events } = run(input);
        let balance = 0n;
        let limit: Micros | null = null;
        let recovered = true; // since the last warning, has the balance been at/above the threshold (or had none)?
        for (const e of events) {
          if (e.type === 'CreditBalanceOpened') limit = e.lowBalanceThreshold;
          if (e.type === 'CreditBalanceSettingsChanged') limit = e.lowBalanceThreshold;
          if (e.type === 'CreditToppedUp' || e.type === 'CreditConsumed') balance = e.balanceAfter;
          if (e.type === 'LowBalanceWarned') {
            expect(recovered).toBe(true);
            expect(limit).not.toBeNull();
            expect(e).toMatchObject({ threshold: limit, balance });
            expect(balance < e.threshold).toBe(true);
            recovered = false;
          } else if (limit === null || balance >= limit) {
            recovered = true;
          }
        }
      }),
    );
  });

  it('(4) folding the emitted events from scratch gives the state reached step by step', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { events, state } = run(input);
        expect(foldBalance(events)).toEqual(state);
        // And that state agrees with the commands on everything but the balance (checked in (1)).
        let name = 'API credits';
        let limit = input.lowBalanceThreshold;
        let overdraftLimit = 0n;
        for (const c of input.commands) {
          if (c.type === 'ChangeSettings') {
            name = c.name ?? name;
            if (c.lowBalanceThreshold !== undefined) limit = c.lowBalanceThreshold;
            overdraftLimit = c.overdraftLimit ?? overdraftLimit;
          }
        }
        expect(state).toMatchObject({ status: 'open', name, lowBalanceThreshold: limit, overdraftLimit });
        expect(state.warned).toBe(limit !== null && state.balance < limit);
      }),
    );
  });

  it('(4) a settings change is recorded only when something changes, and zero usage records nothing', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const { steps } = run(input);
        for (let i = 1; i < steps.length; i += 1) {
          const { command: c, events } = steps[i]!;
          const before = steps[i - 1]!.state;
          if (c.type === 'ChangeSettings') {
            const unchanged =
              (c.name ?? before.name) === before.name &&
              (c.lowBalanceThreshold === undefined ? before.lowBalanceThreshold : c.lowBalanceThreshold) === before.lowBalanceThreshold &&
              (c.overdraftLimit ?? before.overdraftLimit) === before.overdraftLimit;
            expect(count(events, 'CreditBalanceSettingsChanged')).toBe(unchanged ? 0 : 1);
            if (unchanged) expect(events).toEqual([]);
          }
          if (c.type === 'ConsumeUsage' && c.credits === 0n) expect(events).toEqual([]);
        }
      }),
    );
  });

  it('(5) every generated event round-trips through its ledger payload and JSON', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        for (const event of run(input).events) {
          const payload = JSON.parse(JSON.stringify(toLedgerPayload(event))) as LedgerEventPayloadV1;
          expect(fromLedgerPayload(payload)).toEqual(event);
        }
      }),
    );
  });
});

/**
 * Holds: random sequences of holds, captures, releases, expiries and usage that settles holds,
 * over a small pool of hold ids so that commands meet the same hold often. A refused command
 * (does not fit, hold not open) changes nothing, as on the command path.
 */
const HOLD_IDS = ['h-0', 'h-1', 'h-2', 'h-3'] as const;
const holdId = fc.constantFrom(...HOLD_IDS);
const holdCommand: fc.Arbitrary<BalanceCommand> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(holdId, amount).map(([id, credits]) => placeHold(id, credits)) },
  { weight: 2, arbitrary: fc.tuple(holdId, fc.option(amount, { nil: undefined })).map(([id, credits]) => captureHold(id, credits)) },
  { weight: 1, arbitrary: holdId.map((id) => releaseHold(id)) },
  { weight: 1, arbitrary: holdId.map((id) => expireHold(id)) },
  { weight: 2, arbitrary: fc.tuple(amount, fc.option(holdId, { nil: undefined })).map(([credits, id]) => consumeUsage(credits, USAGE, id)) },
  { weight: 1, arbitrary: amount.map((credits) => topUp(credits)) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 20n * CREDIT }).map((overdraftLimit) => changeSettings({ overdraftLimit })) },
);
const holdScenario = fc.record({
  startingBalance: fc.oneof(fc.constant(0n), wholeCredits(60n)),
  overdraftLimit: fc.oneof(fc.constant(0n), wholeCredits(20n)),
  commands: fc.array(holdCommand, { maxLength: 60 }),
});

function runHolds({ startingBalance, overdraftLimit, commands }: typeof holdScenario extends fc.Arbitrary<infer T> ? T : never) {
  const open = openBalance({ startingBalance, overdraftLimit });
  let state = asOpen(decide(open, initialBalanceState).reduce(evolve, initialBalanceState));
  const events: BalanceEvent[] = decide(open, initialBalanceState);
  const steps: { command: BalanceCommand; before: OpenBalance; events: BalanceEvent[] | Error; state: OpenBalance }[] = [];
  for (const next of commands) {
    const before = state;
    let decided: BalanceEvent[] | Error;
    try {
      decided = decide(next, state);
      state = asOpen(decided.reduce(evolve, state as BalanceState));
      events.push(...decided);
    } catch (error) {
      decided = error as Error;
    }
    steps.push({ command: next, before, events: decided, state });
  }
  return { steps, state, events };
}

describe('balance decider properties: holds', () => {
  it('(H1) held is the sum of the open holds, and every event records the figures the fold reaches', () => {
    fc.assert(
      fc.property(holdScenario, (input) => {
        let state: BalanceState = initialBalanceState;
        for (const event of runHolds(input).events) {
          state = evolve(state, event);
          const open = asOpen(state);
          expect(open.held).toBe(Object.values(open.holds).reduce((sum, hold) => sum + hold.credits, 0n));
          if ('heldAfter' in event) expect(event.heldAfter).toBe(open.held);
          if ('balanceAfter' in event) expect(event.balanceAfter).toBe(open.balance);
        }
      }),
    );
  });

  it('(H2) a hold is granted exactly when it fits, and holds never take available below −overdraftLimit', () => {
    fc.assert(
      fc.property(holdScenario, (input) => {
        for (const { command, before, events, state } of runHolds(input).steps) {
          if (command.type !== 'PlaceHold') continue;
          const fits = before.balance - before.held - command.credits >= -before.overdraftLimit;
          const taken = Object.hasOwn(before.holds, command.holdId);
          expect(events instanceof Error).toBe(!fits || taken);
          if (!(events instanceof Error)) expect(state.balance - state.held >= -state.overdraftLimit).toBe(true);
          if (!taken && !fits) expect(events).toBeInstanceOf(InsufficientCreditsError);
        }
      }),
    );
  });

  it('(H3) each hold is freed once, and a capture charges at most what was held', () => {
    fc.assert(
      fc.property(holdScenario, (input) => {
        const { events } = runHolds(input);
        const open = new Map<string, Micros>();
        for (const [index, event] of events.entries()) {
          if (event.type === 'CreditsHeld') {
            expect(open.has(event.holdId)).toBe(false);
            open.set(event.holdId, event.credits);
          }
          if (event.type === 'HoldCaptured' || event.type === 'HoldReleased' || event.type === 'HoldExpired') {
            const credits = open.get(event.holdId);
            expect(credits).toBeDefined();
            open.delete(event.holdId);
            if (event.type === 'HoldCaptured') {
              expect(event.credits + event.released).toBe(credits);
              expect(event.credits > 0n && event.credits <= credits!).toBe(true);
              // The charge is the CreditConsumed just before it.
              expect(events[index - 1]).toMatchObject({ type: 'CreditConsumed', source: 'hold', credits: event.credits });
            } else {
              expect(event.credits).toBe(credits);
            }
          }
        }
      }),
    );
  });

  it('(H4) balance = starting + Σ top-ups − Σ consumption, captures included; holds alone never move it', () => {
    fc.assert(
      fc.property(holdScenario, (input) => {
        const { state, events } = runHolds(input);
        const fromEvents = events.reduce(
          (sum, e) => (e.type === 'CreditToppedUp' ? sum + e.credits : e.type === 'CreditConsumed' ? sum - e.credits : sum),
          0n,
        );
        expect(state.balance).toBe(fromEvents);
        expect(foldBalance(events)).toEqual(state);
      }),
    );
  });

  it('(H6) every state the fold reaches has an opened state\'s fields, in their order (one hidden class)', () => {
    fc.assert(
      fc.property(holdScenario, scenario, (holds, plain) => {
        const opened = Object.keys(asOpen(foldBalance(decide(openBalance({}), initialBalanceState))));
        for (const events of [runHolds(holds).events, run(plain).events]) {
          let state: BalanceState = initialBalanceState;
          for (const event of events) {
            state = evolve(state, event);
            expect(Object.keys(state)).toEqual(opened);
          }
        }
      }),
    );
  });

  it('(H7) one LowBalanceWarned per crossing and one CreditBalanceDepleted per fall, with captures, hold-settling usage and overdraft changes mixed in', () => {
    const mixed = fc.record({
      startingBalance: fc.oneof(fc.constant(0n), wholeCredits(60n), fc.bigInt({ min: 0n, max: 60n * CREDIT })),
      lowBalanceThreshold: threshold,
      overdraftLimit: fc.oneof(fc.constant(0n), wholeCredits(20n)),
      commands: fc.array(
        fc.oneof(
          { weight: 3, arbitrary: holdCommand },
          { weight: 2, arbitrary: command },
          // Usage settling a hold for nothing (the consumer's 0-credit charge) frees it alone.
          { weight: 1, arbitrary: holdId.map((id) => consumeUsage(0n, USAGE, id)) },
        ),
        { maxLength: 80 },
      ),
    });
    fc.assert(
      fc.property(mixed, ({ startingBalance, lowBalanceThreshold, overdraftLimit, commands }) => {
        const open = openBalance({ startingBalance, lowBalanceThreshold, overdraftLimit });
        const opening = decide(open, initialBalanceState);
        let state = asOpen(opening.reduce(evolve, initialBalanceState));
        // The model: the balance moved by the charges' and top-ups' credits, the threshold the commands set.
        let balance = startingBalance;
        let limit = lowBalanceThreshold;
        let outstanding = limit !== null && balance < limit;
        expect(count(opening, 'LowBalanceWarned')).toBe(outstanding ? 1 : 0);
        for (const c of commands) {
          let events: BalanceEvent[];
          try {
            events = decide(c, state);
          } catch {
            continue; // refused (does not fit, hold not open): nothing changes
          }
          const before = balance;
          for (const e of events) {
            if (e.type === 'CreditToppedUp') balance += e.credits;
            if (e.type === 'CreditConsumed') balance -= e.credits;
          }
          if (c.type === 'ChangeSettings' && c.lowBalanceThreshold !== undefined) limit = c.lowBalanceThreshold;
          const below = limit !== null && balance < limit;
          expect(events.filter((e) => e.type === 'LowBalanceWarned')).toEqual(
            below && !outstanding ? [{ type: 'LowBalanceWarned', threshold: limit, balance, occurredAt: AT }] : [],
          );
          outstanding = below;
          expect(events.filter((e) => e.type === 'CreditBalanceDepleted')).toEqual(
            before > 0n && balance <= 0n ? [{ type: 'CreditBalanceDepleted', balance, occurredAt: AT }] : [],
          );
          state = asOpen(events.reduce(evolve, state as BalanceState));
          expect(state.balance).toBe(balance);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('(H8) near the limit of open holds, a hold is refused as too many exactly when the balance has MAX_OPEN_HOLDS open; none is ever added past it', () => {
    // Balances with MAX_OPEN_HOLDS − 3 to + 2 open holds of a micro-credit (more than the limit:
    // a stream written before it), folded once each: a fold of a thousand holds is not free.
    const OLD = 'h-old-';
    const folded = new Map<number, OpenBalance>();
    const start = (count: number): OpenBalance => {
      let state = folded.get(count);
      if (state === undefined) {
        const events: BalanceEvent[] = [...decide(openBalance({ startingBalance: 100n * CREDIT }), initialBalanceState)];
        for (let index = 0; index < count; index += 1) {
          events.push(held(`${OLD}${index}`, 1n, { balanceAfter: 100n * CREDIT, heldAfter: BigInt(index + 1) }));
        }
        state = asOpen(foldBalance(events));
        folded.set(count, state);
      }
      return state;
    };
    const oldHold = fc.nat({ max: MAX_OPEN_HOLDS + 1 }).map((index) => `${OLD}${index}`);
    const nearLimit = fc.record({
      count: fc.integer({ min: MAX_OPEN_HOLDS - 3, max: MAX_OPEN_HOLDS + 2 }),
      commands: fc.array(
        fc.oneof(
          { weight: 3, arbitrary: holdCommand },
          { weight: 2, arbitrary: oldHold.map((id) => releaseHold(id)) },
          { weight: 1, arbitrary: oldHold.map((id) => captureHold(id)) },
        ),
        // Short: every step copies a thousand holds.
        { maxLength: 20 },
      ),
    });
    fc.assert(
      fc.property(nearLimit, ({ count, commands }) => {
        let state = start(count);
        for (const next of commands) {
          const before = Object.keys(state.holds).length;
          let decided: BalanceEvent[] | Error;
          try {
            decided = decide(next, state);
          } catch (error) {
            decided = error as Error;
          }
          if (next.type === 'PlaceHold' && !Object.hasOwn(state.holds, next.holdId)) {
            expect(decided instanceof TooManyOpenHoldsError).toBe(before >= MAX_OPEN_HOLDS);
          }
          if (decided instanceof Error) continue;
          state = asOpen(decided.reduce(evolve, state as BalanceState));
          const after = Object.keys(state.holds).length;
          expect(after <= Math.max(before, MAX_OPEN_HOLDS)).toBe(true);
          expect(state.held).toBe(Object.values(state.holds).reduce((sum, hold) => sum + hold.credits, 0n));
        }
      }),
    );
  });

  it('(H5) every hold event round-trips through its ledger payload and JSON', () => {
    fc.assert(
      fc.property(holdScenario, (input) => {
        for (const event of runHolds(input).events) {
          const payload = JSON.parse(JSON.stringify(toLedgerPayload(event))) as LedgerEventPayloadV1;
          expect(fromLedgerPayload(payload)).toEqual(event);
        }
      }),
    );
  });
});
