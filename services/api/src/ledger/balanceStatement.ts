import { evolve, initialBalanceState, type BalanceState, type ConsumptionSource, type Micros, type TopUpSource } from '@tally/domain';
import {
  STATEMENT_CONSUMPTION_SOURCES,
  STATEMENT_TOP_UP_SOURCES,
  type RecordedBalanceEvent,
  type StatementBoundary,
  type StatementStart,
  type StatementTotals,
} from '@tally/ledger';

export interface StatementFigures {
  readonly balance: Micros;
  readonly held: Micros;
}

/**
 * A balance's period as an accountant reads it: what it stood at when the period began, what was
 * added and taken by source, and what it stood at when the period ended. `closing.balance` is
 * always `opening.balance` + Σ toppedUp − Σ consumed: both ends are the one fold (`evolve`) of the
 * same stream, and the totals are the entries between them.
 */
export interface BalanceStatement {
  readonly opening: StatementFigures;
  readonly closing: StatementFigures;
  readonly toppedUp: Readonly<Record<TopUpSource, Micros>>;
  readonly consumed: Readonly<Record<ConsumptionSource, Micros>>;
  /** The ledger entries recorded in the period, of every type. */
  readonly entries: number;
  /** The revisions of the period's first and last entries; null when it has none. */
  readonly firstRevision: bigint | null;
  readonly lastRevision: bigint | null;
}

export interface StatementFold {
  /**
   * Takes the stream's next entry, oldest first; false once an entry recorded at or after the
   * period's end was seen, when nothing later can belong to it (the caller stops reading).
   */
  add(entry: RecordedBalanceEvent): boolean;
  /**
   * Goes on from `endStart` (createStatementFold) instead of the entries before it, once the
   * period's opening is known (an entry recorded at or after its start was added or, before any
   * entry, the fold began at a start kept at that instant), when that start was kept at an
   * instant after the period's start, at or before its end, and is further on than what was
   * folded: the entries skipped are all in the period, and the totals kept with the start give
   * their sums. Tried once: the revision to read on after when it went on; undefined, and nothing
   * changes, otherwise (and on every later call). The caller asks before reading and after each
   * entry added.
   */
  skip(): bigint | undefined;
  /**
   * The period's end is known: an entry recorded at or after it was added, or the fold skipped to
   * a start kept at that very instant. Nothing more belongs to the period; the caller reads no more.
   */
  complete(): boolean;
  statement(): BalanceStatement;
  /**
   * The edges the entries added showed, in the order found: for `from` and for `to`, once the
   * first entry recorded at or after it was added, its revision, the fold before it and the sums
   * of the entries before it; and, with `startsEvery`, one on the way at least that many entries
   * after the previous (see createStatementFold). An edge at the opening entry has nothing before
   * it and is left out. A later statement starts from one of these.
   */
  boundaries(): StatementBoundary[];
}

type Sums = { toppedUp: Record<TopUpSource, Micros>; consumed: Record<ConsumptionSource, Micros> };

const zeroBy = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((key) => [key, 0n])) as Record<K, Micros>;
const copyOf = (totals: StatementTotals): Sums => ({ toppedUp: { ...totals.toppedUp }, consumed: { ...totals.consumed } });
const differenceBy = <K extends string>(keys: readonly K[], later: Readonly<Record<K, Micros>>, earlier: Readonly<Record<K, Micros>>) =>
  Object.fromEntries(keys.map((key): [K, Micros] => [key, (later[key] as Micros) - (earlier[key] as Micros)])) as Record<K, Micros>;
const figuresOf = (state: BalanceState): StatementFigures => (state.status === 'open' ? { balance: state.balance, held: state.held } : { balance: 0n, held: 0n });

/**
 * Folds a balance's entries, oldest first, into the statement of `[from, to)` (epoch milliseconds).
 * An entry belongs to the period it was recorded in (`recordedAt`, when the ledger took it), not
 * to when its usage happened: a late usage event is booked when it is metered, so a statement of
 * a closed period never changes. The period's entries are the run from the first entry recorded
 * at or after `from` to the last before the first recorded at or after `to`: a run of revisions,
 * so the opening, the totals and the closing always add up, whatever the clocks did. The totals
 * are the sums of every entry up to the end less those up to the opening, so a fold may skip
 * (skip) the entries between to `endStart`, a start kept with its sums.
 *
 * `startsEvery`: an edge is also offered on the way, at the first entry at least that many
 * entries after the previous edge (or `start`) whose recording time is later than every entry's
 * before it, at the instant just after those: so a long read (a period after years of ledger, a
 * first statement, one given up half way) leaves starts behind it whatever instants it was asked
 * for, and the next statement near them reads about that many entries at most to reach its
 * period's opening, and as many to reach its end.
 */
export function createStatementFold(
  period: { readonly from: number; readonly to: number },
  start?: StatementStart,
  startsEvery?: number,
  endStart?: StatementStart,
): StatementFold {
  // Started from a stored fold, the entries after it follow: those before were all recorded
  // before the period (StatementStarts.before), so they only made this state and these sums.
  let state: BalanceState = start?.before.state ?? initialBalanceState;
  let folded: bigint | null = start?.before.revision ?? null;
  let sums: Sums = start === undefined ? { toppedUp: zeroBy(STATEMENT_TOP_UP_SOURCES), consumed: zeroBy(STATEMENT_CONSUMPTION_SOURCES) } : copyOf(start.totals);
  // No entry before the next one added was recorded after this: the latest recording time added,
  // or, before that, the instant just before the start's (every entry up to it was recorded
  // before that instant, StatementStarts.before).
  let latest: number | undefined = start === undefined ? undefined : start.at - 1;
  let sinceEdge = 0;
  const boundaries: StatementBoundary[] = [];
  const edge = (at: number, entry: RecordedBalanceEvent) => {
    if (folded !== null && state.status === 'open') boundaries.push({ at, revision: entry.revision, before: { state, revision: folded }, totals: copyOf(sums) });
    sinceEdge = 0;
  };
  /**
   * The period's first entry (or the first past it, for a period with none), with the figures and
   * sums before it: known from the start when it was kept at the period's own start, whose next
   * revision is the first entry recorded at or after that instant (StatementStarts.before).
   */
  let opening: { readonly revision: bigint; readonly figures: StatementFigures; readonly sums: Sums } | undefined =
    start?.at === period.from ? { revision: start.before.revision + 1n, figures: figuresOf(state), sums: copyOf(sums) } : undefined;
  /** The first entry recorded at or after the period's end, once added. */
  let end: bigint | undefined;
  let toTry = endStart;
  return {
    add(entry) {
      if (end !== undefined) return false;
      const at = entry.recordedAt.getTime();
      // Later than all before it: the first entry recorded at or after the instant after them.
      if (startsEvery !== undefined && latest !== undefined && at > latest && sinceEdge >= startsEvery) edge(latest + 1, entry);
      if (latest === undefined || at > latest) latest = at;
      sinceEdge += 1;
      if (opening === undefined && at >= period.from) {
        opening = { revision: entry.revision, figures: figuresOf(state), sums: copyOf(sums) };
        edge(period.from, entry);
      }
      if (at >= period.to) {
        edge(period.to, entry);
        end = entry.revision;
        return false;
      }
      state = evolve(state, entry.event);
      folded = entry.revision;
      const { event } = entry;
      if (event.type === 'CreditToppedUp') sums.toppedUp[event.source] += event.credits;
      else if (event.type === 'CreditConsumed') sums.consumed[event.source] += event.credits;
      return true;
    },
    skip() {
      // Tried once, when the opening is known: the fold only moves further on after that.
      if (toTry === undefined || opening === undefined) return undefined;
      const to = toTry;
      toTry = undefined;
      if (end !== undefined || to.at <= period.from || to.at > period.to || folded === null || to.before.revision <= folded) return undefined;
      state = to.before.state;
      folded = to.before.revision;
      sums = copyOf(to.totals);
      latest = to.at - 1;
      sinceEdge = 0;
      // A start is kept at the first entry recorded at or after its instant (edge), and revisions
      // are the stream's order, so no later append lands before it: a start kept at the period's
      // end is its end, and the entries after it need not be read to find it.
      if (to.at === period.to) end = folded + 1n;
      return folded;
    },
    complete: () => end !== undefined,
    statement() {
      const closing = figuresOf(state);
      if (opening === undefined) {
        return { opening: closing, closing, toppedUp: zeroBy(STATEMENT_TOP_UP_SOURCES), consumed: zeroBy(STATEMENT_CONSUMPTION_SOURCES), entries: 0, firstRevision: null, lastRevision: null };
      }
      // A run of revisions: from the opening entry to the one before the end (or the last folded).
      const last = end === undefined ? folded! : end - 1n;
      const entries = last >= opening.revision ? Number(last - opening.revision + 1n) : 0;
      return {
        opening: opening.figures,
        closing,
        toppedUp: differenceBy(STATEMENT_TOP_UP_SOURCES, sums.toppedUp, opening.sums.toppedUp),
        consumed: differenceBy(STATEMENT_CONSUMPTION_SOURCES, sums.consumed, opening.sums.consumed),
        entries,
        firstRevision: entries > 0 ? opening.revision : null,
        lastRevision: entries > 0 ? last : null,
      };
    },
    boundaries: () => [...boundaries],
  };
}
