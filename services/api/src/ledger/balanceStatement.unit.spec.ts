import fc from 'fast-check';
import { decide, evolve, HoldAlreadyPlacedError, initialBalanceState, InsufficientCreditsError, type BalanceCommand, type BalanceEvent, type BalanceState, type ConsumptionSource, type TopUpSource } from '@tally/domain';
import type { RecordedBalanceEvent, StatementBoundary, StatementStart } from '@tally/ledger';
import { createStatementFold, type BalanceStatement } from './balanceStatement';

const CREDIT = 1_000_000n;
const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const AT = '2026-03-01T00:00:00.000Z';

/** Commands decided in turn; the n-th event recorded at `times[n]` (epoch ms). */
function ledgerOf(commands: readonly BalanceCommand[], times: (index: number) => number): RecordedBalanceEvent[] {
  let state: BalanceState = initialBalanceState;
  const events: BalanceEvent[] = [];
  for (const command of commands) {
    let decided: BalanceEvent[];
    try {
      decided = decide(command, state);
    } catch (error) {
      // What the decider refuses (an overdraft, a hold id in use) is not in the ledger, as in production.
      if (error instanceof InsufficientCreditsError || error instanceof HoldAlreadyPlacedError) continue;
      throw error;
    }
    for (const event of decided) {
      state = evolve(state, event);
      events.push(event);
    }
  }
  return events.map((event, index) => ({
    eventId: `e${index}`,
    event,
    metadata: {} as RecordedBalanceEvent['metadata'],
    revision: BigInt(index),
    position: BigInt(index),
    recordedAt: new Date(times(index)),
  }));
}

/**
 * The statement of `period` as LedgerHistory reads it: folded from `start` (the entries after its
 * fold) or from the first entry up to the period's opening, then on from `end` when the fold can
 * skip to it. `read` counts the entries added.
 */
function statementOf(
  entries: readonly RecordedBalanceEvent[],
  period: { from: number; to: number },
  start?: StatementStart,
  startsEvery?: number,
  end?: StatementStart,
): { statement: BalanceStatement; read: number; boundaries: StatementBoundary[]; skipped: boolean } {
  const fold = createStatementFold(period, start, startsEvery, end);
  let read = 0;
  let skipped = false;
  const skip = () => {
    const to = fold.skip();
    if (to !== undefined) skipped = true;
    return to;
  };
  let after = skip() ?? start?.before.revision ?? null;
  read: while (!fold.complete()) {
    for (const entry of entries) {
      if (after !== null && entry.revision <= after) continue;
      read += 1;
      if (!fold.add(entry)) break read;
      const skippedTo = skip();
      if (skippedTo !== undefined) {
        after = skippedTo;
        continue read;
      }
    }
    break;
  }
  return { statement: fold.statement(), read, boundaries: fold.boundaries(), skipped };
}

const open: BalanceCommand = { type: 'OpenBalance', balanceId: 'b', customerId: 'c', productId: 'p', name: 'n', lowBalanceThreshold: 5n * CREDIT, startingBalance: 10n * CREDIT, at: AT };
const topUp = (credits: bigint): BalanceCommand => ({ type: 'TopUp', credits, source: 'manual', reason: null, at: AT });
const deduct = (credits: bigint): BalanceCommand => ({ type: 'DeductManually', credits, reason: null, at: AT });
const hold = (holdId: string, credits: bigint): BalanceCommand => ({ type: 'PlaceHold', holdId, credits, expiresAt: '2026-03-02T00:00:00.000Z', reference: null, at: AT });

describe('a statement of a period', () => {
  // Opened with 10 (two events: opened, starting top-up), then one event a minute.
  const minute = 60_000;
  const ledger = ledgerOf([open, topUp(3n * CREDIT), deduct(7n * CREDIT), hold('h', 2n * CREDIT), deduct(2n * CREDIT)], (index) => T0 + index * minute);

  it('given a period around the middle entries, states the balance before them, their totals by source and the balance after', () => {
    expect(ledger.map(({ event }) => event.type)).toEqual(['CreditBalanceOpened', 'CreditToppedUp', 'CreditToppedUp', 'CreditConsumed', 'CreditsHeld', 'CreditConsumed', 'LowBalanceWarned']);
    // Recorded at minutes 2 (top-up 3), 3 (deduction 7) and 4 (hold 2): [2, 5) minutes.
    const { statement, read } = statementOf(ledger, { from: T0 + 2 * minute, to: T0 + 5 * minute });
    expect(statement).toEqual({
      opening: { balance: 10n * CREDIT, held: 0n },
      closing: { balance: 6n * CREDIT, held: 2n * CREDIT },
      toppedUp: { starting: 0n, manual: 3n * CREDIT, purchase: 0n, grant: 0n, refund: 0n },
      consumed: { usage: 0n, manual: 7n * CREDIT, hold: 0n },
      entries: 3,
      firstRevision: 2n,
      lastRevision: 4n,
    });
    // It stopped at the first entry past the period: nothing later is read.
    expect(read).toBe(6);
  });

  it('given a period around the middle entries, keeps where it began and ended: the first entry at or after each edge and the fold before it', () => {
    const { boundaries } = statementOf(ledger, { from: T0 + 2 * minute, to: T0 + 5 * minute });
    const foldTo = (revision: number) => ledger.slice(0, revision + 1).reduce((state, entry) => evolve(state, entry.event), initialBalanceState);
    const totals = (added: Partial<Record<TopUpSource, bigint>>, taken: Partial<Record<ConsumptionSource, bigint>>) => ({
      toppedUp: { starting: 0n, manual: 0n, purchase: 0n, grant: 0n, refund: 0n, ...added },
      consumed: { usage: 0n, manual: 0n, hold: 0n, ...taken },
    });
    expect(boundaries).toEqual([
      { at: T0 + 2 * minute, revision: 2n, before: { state: foldTo(1), revision: 1n }, totals: totals({ starting: 10n * CREDIT }, {}) },
      { at: T0 + 5 * minute, revision: 5n, before: { state: foldTo(4), revision: 4n }, totals: totals({ starting: 10n * CREDIT, manual: 3n * CREDIT }, { manual: 7n * CREDIT }) },
    ]);
  });

  it.each([
    // Revisions 0 and 1 (the opening), then 5 and 6 (the first past the period): not 2 to 4.
    ['no start kept at its start: reads to the opening, then skips to the start inside', undefined, 5, 4],
    // Revisions 4 and 5 (the period's), then 6: nothing before the inner start.
    ["a start kept at its start: skips before reading anything, then reads past the start inside", 1, 4, 3],
    // None: a start kept at its end is the first entry at or after it, so is its end.
    ['starts kept at both its edges: skips before reading anything, and reads nothing after', 1, 6, 0],
  ] as const)('given %s, and totals the entries skipped by its sums', (_, startMinute, insideMinute, read) => {
    // Kept by an earlier statement whose edges they were.
    const keptAt = (minutes: number) => statementOf(ledger, { from: T0 + minutes * minute, to: T0 + (minutes + 1) * minute }).boundaries[0]!;
    const period = { from: T0 + minute, to: T0 + 6 * minute };
    const skipping = statementOf(ledger, period, startMinute === undefined ? undefined : keptAt(startMinute), undefined, keptAt(insideMinute));
    expect(skipping.skipped).toBe(true);
    expect(skipping.statement).toEqual(statementOf(ledger, period).statement);
    expect(skipping.statement).toMatchObject({ entries: 5, firstRevision: 1n, lastRevision: 5n });
    expect(skipping.read).toBe(read);
  });

  it("given a start kept at the period's start and no entry after it, states an empty period at the start's figures", () => {
    const atSix = statementOf(ledger, { from: T0, to: T0 + 6 * minute }).boundaries.find(({ at }) => at === T0 + 6 * minute)!;
    const after = { from: T0 + 6 * minute, to: T0 + 7 * minute };
    const lastRemoved = ledger.slice(0, 6);
    const resumed = statementOf(lastRemoved, after, atSix);
    expect(resumed.read).toBe(0);
    expect(resumed.statement).toEqual(statementOf(lastRemoved, after).statement);
    expect(resumed.statement).toMatchObject({ entries: 0, firstRevision: null, lastRevision: null });
  });

  it('given a start outside the period or not further on than the fold, does not skip to it', () => {
    const [atTwo, atFive] = statementOf(ledger, { from: T0 + 2 * minute, to: T0 + 5 * minute }).boundaries;
    // Kept at the period's start, at its end's instant past it, or before what was read to the opening.
    for (const [period, start] of [
      [{ from: T0 + 2 * minute, to: T0 + 6 * minute }, atTwo],
      [{ from: T0 + minute, to: T0 + 4 * minute }, atFive],
      [{ from: T0 + 3 * minute, to: T0 + 6 * minute }, atTwo],
    ] as const) {
      const read = statementOf(ledger, period, undefined, undefined, start);
      expect(read.skipped).toBe(false);
      expect(read.statement).toEqual(statementOf(ledger, period).statement);
    }
  });

  it('given where an earlier statement ended, states the next period reading only the entries after it', () => {
    const march = statementOf(ledger, { from: T0, to: T0 + 3 * minute });
    const end = march.boundaries.find(({ at }) => at === T0 + 3 * minute)!;
    const next = { from: T0 + 3 * minute, to: T0 + 6 * minute };
    const resumed = statementOf(ledger, next, end);
    expect(resumed.statement).toEqual(statementOf(ledger, next).statement);
    // Revisions 3 to 5 in the period, and 6, the first past it.
    expect(resumed.read).toBe(4);
    // Its own start is not found again (the fold begins opened there); its end is.
    expect(resumed.boundaries.map(({ at, revision }) => [at, revision])).toEqual([[T0 + 6 * minute, 6n]]);
  });

  it('given starts every 2 entries, offers one on the way at the next entry recorded after all before it, the instant after theirs', () => {
    // Recorded at minutes 0, 0, 2, 1, 3, 3, 5, 6: revisions 2, 4 and 6 each come 2 entries after
    // the previous start and later than every entry before them; revision 3 went back.
    const times = [0, 0, 2, 1, 3, 3, 5, 6];
    const stepped = ledgerOf([open, topUp(1n), topUp(2n), topUp(3n), topUp(4n), topUp(5n), topUp(6n)], (index) => T0 + times[index]! * minute);
    const { boundaries } = statementOf(stepped, { from: T0 + 60 * minute, to: T0 + 61 * minute }, undefined, 2);
    expect(boundaries.map(({ at, revision }) => [at, revision])).toEqual([
      [T0 + 0 * minute + 1, 2n],
      [T0 + 2 * minute + 1, 4n],
      [T0 + 3 * minute + 1, 6n],
    ]);
    // Each is the first entry recorded at or after its instant, although revision 3 went back.
    for (const { at, revision } of boundaries) expect(BigInt(stepped.findIndex((entry) => entry.recordedAt.getTime() >= at))).toBe(revision);
    // Without startsEvery, only the period's edges (none here: the period is after every entry).
    expect(statementOf(stepped, { from: T0 + 60 * minute, to: T0 + 61 * minute }).boundaries).toEqual([]);
  });

  it('given a start kept at an instant, offers the next one on the way only after entries later than that instant', () => {
    // Revision 2 (minute 2) follows the start's instant; revisions 3 and 4 went back before it.
    const stepped = ledgerOf([open, topUp(1n), topUp(2n), topUp(3n), topUp(4n)], (index) => T0 + [0, 0, 2, 1, 1, 4][index]! * minute);
    const start = statementOf(stepped, { from: T0 + 2 * minute, to: T0 + 3 * minute }).boundaries[0]!;
    expect([start.at, start.revision]).toEqual([T0 + 2 * minute, 2n]);
    // Revisions 3 and 4 are 1 and 2 entries on from it but recorded before its instant: no start
    // at them (revision 2 was recorded after them); revision 5 is the first later than all.
    const { boundaries } = statementOf(stepped, { from: T0 + 60 * minute, to: T0 + 61 * minute }, start, 1);
    expect(boundaries.map(({ at, revision }) => [at, revision])).toEqual([[T0 + 2 * minute + 1, 5n]]);
  });

  it('given a period that begins at the opening entry, keeps no start: there is nothing before it to skip', () => {
    expect(statementOf(ledger, { from: T0 - minute, to: T0 + 2 * minute }).boundaries.map(({ at }) => at)).toEqual([T0 + 2 * minute]);
  });

  it('given a period before the balance opened, states zeros and no entries', () => {
    const { statement } = statementOf(ledger, { from: T0 - 10 * minute, to: T0 });
    expect(statement).toMatchObject({ opening: { balance: 0n, held: 0n }, closing: { balance: 0n, held: 0n }, entries: 0, firstRevision: null, lastRevision: null });
  });

  it('given a period after the last entry, opens and closes at the final balance with no entries', () => {
    const { statement } = statementOf(ledger, { from: T0 + 60 * minute, to: T0 + 120 * minute });
    expect(statement).toMatchObject({ opening: { balance: 4n * CREDIT, held: 2n * CREDIT }, closing: { balance: 4n * CREDIT, held: 2n * CREDIT }, entries: 0 });
  });

  it('given a period from the opening, counts the starting balance as added', () => {
    const { statement } = statementOf(ledger, { from: T0, to: T0 + 2 * minute });
    expect(statement).toMatchObject({ opening: { balance: 0n }, closing: { balance: 10n * CREDIT }, toppedUp: { starting: 10n * CREDIT }, entries: 2 });
  });

  it('given clocks that went back inside the period, keeps the run of revisions, so it still adds up', () => {
    const stepped = ledgerOf([open, topUp(3n * CREDIT), deduct(7n * CREDIT), deduct(1n * CREDIT)], (index) => [T0, T0, T0 + 2 * minute, T0 + minute, T0 + 9 * minute][index]!);
    const { statement } = statementOf(stepped, { from: T0 + 2 * minute, to: T0 + 5 * minute });
    expect(statement).toMatchObject({ opening: { balance: 10n * CREDIT }, closing: { balance: 6n * CREDIT }, entries: 2 });
  });

  const amount = fc.bigInt({ min: 1n, max: 20n * CREDIT });
  const command = fc.oneof(
    amount.map(topUp),
    amount.map(deduct),
    amount.map((credits): BalanceCommand => ({ type: 'TopUp', credits, source: 'purchase', reason: null, at: AT })),
    fc.tuple(fc.nat({ max: 5 }), amount).map(([id, credits]) => hold(`h${id}`, credits)),
  );

  it('always closes at the opening plus what was added minus what was taken, at the fold of every entry recorded before the end', () => {
    fc.assert(
      fc.property(
        fc.array(command, { maxLength: 40 }),
        fc.array(fc.nat({ max: 3 }), { minLength: 80, maxLength: 80 }),
        fc.nat({ max: 200 }),
        fc.nat({ max: 200 }),
        (commands, gaps, a, b) => {
          // Non-decreasing recording times, with ties, as the store's commit order gives them.
          const times = gaps.reduce<number[]>((sums, gap) => [...sums, (sums.at(-1) ?? T0) + gap], []);
          const ledger = ledgerOf([open, ...commands], (index) => times[index] ?? T0 + 1000);
          const period = { from: T0 + Math.min(a, b), to: T0 + Math.max(a, b) + 1 };
          const { statement } = statementOf(ledger, period);
          const added = Object.values(statement.toppedUp).reduce((sum, credits) => sum + credits, 0n);
          const taken = Object.values(statement.consumed).reduce((sum, credits) => sum + credits, 0n);
          expect(statement.closing.balance).toBe(statement.opening.balance + added - taken);
          const before = (end: number) => ledger.filter((entry) => entry.recordedAt.getTime() < end).reduce((state, entry) => evolve(state, entry.event), initialBalanceState);
          const balanceOf = (state: BalanceState) => (state.status === 'open' ? state.balance : 0n);
          expect(statement.closing.balance).toBe(balanceOf(before(period.to)));
          expect(statement.opening.balance).toBe(balanceOf(before(period.from)));
          expect(statement.entries).toBe(ledger.filter((entry) => entry.recordedAt.getTime() >= period.from && entry.recordedAt.getTime() < period.to).length);
        },
      ),
    );
  });

  it('always states a period the same from the latest starts an earlier statement kept before its ends as from the first entry, whatever the clocks did', () => {
    const foldTo = (ledger: readonly RecordedBalanceEvent[], revision: bigint) => ({
      state: ledger.slice(0, Number(revision) + 1).reduce((state, entry) => evolve(state, entry.event), initialBalanceState),
      revision,
    });
    const periodOf = (a: number, b: number) => ({ from: T0 + Math.min(a, b), to: T0 + Math.max(a, b) + 1 });
    // As StatementStarts.before chooses: the latest kept at or before an instant.
    const latestBefore = (kept: readonly StatementBoundary[], at: number) => kept.filter((boundary) => boundary.at <= at).sort((x, y) => y.at - x.at)[0];
    fc.assert(
      fc.property(
        fc.array(command, { maxLength: 40 }),
        // Recording times that go back now and then, as a writer's clock may.
        fc.array(fc.integer({ min: -2, max: 4 }), { minLength: 80, maxLength: 80 }),
        fc.array(fc.nat({ max: 200 }), { minLength: 6, maxLength: 6 }),
        // Starts on the way every so many entries, or none.
        fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
        (commands, steps, [a, b, c, d, e, f], startsEvery) => {
          const times = steps.reduce<number[]>((sums, step) => [...sums, (sums.at(-1) ?? T0) + step], []);
          const ledger = ledgerOf([open, ...commands], (index) => times[index] ?? T0 + 1000);
          const fromTheStart = (period: { from: number; to: number }) => statementOf(ledger, period).statement;
          // Each kept edge is the first entry recorded at or after it, with the fold and the sums before it.
          const mustHold = (kept: readonly StatementBoundary[]) => {
            for (const { at, revision, before, totals } of kept) {
              expect(revision).toBe(BigInt(ledger.findIndex((entry) => entry.recordedAt.getTime() >= at)));
              expect(before).toEqual(foldTo(ledger, revision - 1n));
              const { toppedUp, consumed } = fromTheStart({ from: 0, to: at });
              expect(totals).toEqual({ toppedUp, consumed });
            }
          };
          const kept = statementOf(ledger, periodOf(a!, b!), undefined, startsEvery).boundaries;
          mustHold(kept);
          // From the starts kept before each of its ends, a statement finds valid starts too.
          const middle = periodOf(c!, d!);
          const keptAfter = statementOf(ledger, middle, latestBefore(kept, middle.from), startsEvery, latestBefore(kept, middle.to)).boundaries;
          mustHold(keptAfter);
          const all = [...kept, ...keptAfter];
          const later = periodOf(e!, f!);
          expect(statementOf(ledger, later, latestBefore(all, later.from), startsEvery, latestBefore(all, later.to)).statement).toEqual(fromTheStart(later));
        },
      ),
    );
  });
});
