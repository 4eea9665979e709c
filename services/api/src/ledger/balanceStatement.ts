import { evolve, initialBalanceState, type BalanceState, type ConsumptionSource, type Micros, type TopUpSource } from '@tally/domain';
import type { RecordedBalanceEvent, StatementBoundary, StatementStart } from '@tally/ledger';

/** What a statement totals credits by, in the order it lists them. */
export const STATEMENT_TOP_UP_SOURCES = ['starting', 'manual', 'purchase', 'grant', 'refund'] as const satisfies readonly TopUpSource[];
export const STATEMENT_CONSUMPTION_SOURCES = ['usage', 'manual', 'hold'] as const satisfies readonly ConsumptionSource[];

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
  statement(): BalanceStatement;
  /**
   * The edges the entries added showed, in the order found: for `from` and for `to`, once the
   * first entry recorded at or after it was added, its revision and the fold before it; and, with
   * `startsEvery`, one on the way at least that many entries after the previous (see
   * createStatementFold). An edge at the opening entry has nothing before it and is left out. A
   * later statement starts from one of these.
   */
  boundaries(): StatementBoundary[];
}

const zeroBy = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((key) => [key, 0n])) as Record<K, Micros>;
const figuresOf = (state: BalanceState): StatementFigures => (state.status === 'open' ? { balance: state.balance, held: state.held } : { balance: 0n, held: 0n });

/**
 * Folds a balance's entries, oldest first, into the statement of `[from, to)` (epoch milliseconds).
 * An entry belongs to the period it was recorded in (`recordedAt`, when the ledger took it), not
 * to when its usage happened: a late usage event is booked when it is metered, so a statement of
 * a closed period never changes. The period's entries are the run from the first entry recorded
 * at or after `from` to the last before the first recorded at or after `to`: a run of revisions,
 * so the opening, the totals and the closing always add up, whatever the clocks did.
 *
 * `startsEvery`: an edge is also offered on the way, at the first entry at least that many
 * entries after the previous edge (or `start`) whose recording time is later than every entry's
 * before it, at the instant just after those: so a long read (a period after years of ledger, a
 * first statement, one given up half way) leaves starts behind it whatever instants it was asked
 * for, and the next statement near them reads at most about that many entries before its period.
 */
export function createStatementFold(period: { readonly from: number; readonly to: number }, start?: StatementStart, startsEvery?: number): StatementFold {
  // Started from a stored fold, the entries after it follow: those before were all recorded
  // before the period (StatementStarts.before), so they only made this state.
  let state: BalanceState = start?.before.state ?? initialBalanceState;
  let folded: bigint | null = start?.before.revision ?? null;
  // No entry before the next one added was recorded after this: the latest recording time added,
  // or, before that, the instant just before the start's (every entry up to it was recorded
  // before that instant, StatementStarts.before).
  let latest: number | undefined = start === undefined ? undefined : start.at - 1;
  let sinceEdge = 0;
  const boundaries: StatementBoundary[] = [];
  const edge = (at: number, entry: RecordedBalanceEvent) => {
    if (folded !== null && state.status === 'open') boundaries.push({ at, revision: entry.revision, before: { state, revision: folded } });
    sinceEdge = 0;
  };
  let opening: StatementFigures | undefined;
  let ended = false;
  let entries = 0;
  let firstRevision: bigint | null = null;
  let lastRevision: bigint | null = null;
  const toppedUp = zeroBy(STATEMENT_TOP_UP_SOURCES);
  const consumed = zeroBy(STATEMENT_CONSUMPTION_SOURCES);
  return {
    add(entry) {
      if (ended) return false;
      const at = entry.recordedAt.getTime();
      // Later than all before it: the first entry recorded at or after the instant after them.
      if (startsEvery !== undefined && latest !== undefined && at > latest && sinceEdge >= startsEvery) edge(latest + 1, entry);
      if (latest === undefined || at > latest) latest = at;
      sinceEdge += 1;
      if (at >= period.to) {
        // Nothing of the period seen yet: this entry is also the first at or after its start.
        if (opening === undefined) edge(period.from, entry);
        edge(period.to, entry);
        ended = true;
        return false;
      }
      if (opening === undefined && at >= period.from) {
        opening = figuresOf(state);
        edge(period.from, entry);
      }
      state = evolve(state, entry.event);
      folded = entry.revision;
      if (opening === undefined) return true;
      entries += 1;
      firstRevision ??= entry.revision;
      lastRevision = entry.revision;
      const { event } = entry;
      if (event.type === 'CreditToppedUp') toppedUp[event.source] += event.credits;
      else if (event.type === 'CreditConsumed') consumed[event.source] += event.credits;
      return true;
    },
    statement() {
      const closing = figuresOf(state);
      return { opening: opening ?? closing, closing, toppedUp: { ...toppedUp }, consumed: { ...consumed }, entries, firstRevision, lastRevision };
    },
    boundaries: () => [...boundaries],
  };
}
