import type { LookupLoadResult } from './autocannonLoad';
import { loadApiRoute } from './balanceLookups';
import { BENCH_PRODUCT, balanceIdOf, customerIdOf, openBalances, registerBalanceRows } from './benchBalances';
import type { BenchRun } from './benchRun';
import type { CollectedProfile } from './cpuProfiles';
import { unopenedBalance } from './ledgerWorkload';
import { formatCount, progress } from './progress';
import { copyUsageHistory } from './usageHistory';

/**
 * GET /v1/credit-balances/{id}/statement of one month, on a balance with months of history before
 * it and on one with that month alone; on the first, also the month from 09:00 UTC on its first
 * day to the next's (a billing day's hour, not a UTC midnight), asked first, the month before it
 * (with the month's entries after its end) and, last, the whole year to the month's end.
 */
export interface StatementsResult {
  readonly connections: number;
  readonly durationSeconds: number;
  /** Entries of the month stated, on each balance. */
  readonly periodEntries: number;
  /** Entries recorded before that month on the long ledger (after its opening). */
  readonly historyEntries: number;
  /** The long ledger's first statement (the month from 09:00) on its new API process, before the load. */
  readonly firstMs: number;
  /** The month from 09:00 UTC on its first day, on the long ledger, before any statement of it at midnights. */
  readonly fromNine: LookupLoadResult;
  readonly longLedger: LookupLoadResult;
  /**
   * The month before it on the long ledger, with that month's entries after it: last month's
   * statement while this month is metered.
   */
  readonly monthBefore: LookupLoadResult;
  /** The long ledger's year, every month of it, to the month's end: the totals of all its entries. */
  readonly year: LookupLoadResult;
  /** The same month's statement of a balance that holds that month alone: the ceiling. */
  readonly shortLedger: LookupLoadResult;
  /** The higher peak resident memory (VmHWM) of the two API processes. */
  readonly peakRssBytes: number;
  /** With --profile: where the API process spent its time stating the long ledger's month. */
  readonly profile?: CollectedProfile;
}

/** Usage entries recorded in each month. */
const MONTH_ENTRIES = 10_000;
/** Months of history on the long ledger before the month stated: a year of usage, less that month. */
const HISTORY_MONTHS = 11;
/** A statement folds thousands of entries: a few at once, as an accountant's tools or the portal ask. */
const CONNECTIONS = 4;
/** Days a month's usage is spread over, from noon on its first. */
const SPREAD_DAYS = 27;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * A month's statement of a balance with a year of usage, against the same month's statement of a
 * balance that holds that month alone: what the history before a period costs its statement. The
 * months are after the run's (the balances open now), each spread over its days: copied into the
 * ledger, not appended, which would record them now. The first statement on each new API process
 * is timed apart (it may read the ledger from its start); the load asks the same one again.
 */
export async function measureStatements(run: BenchRun): Promise<StatementsResult> {
  const { customers, lookupSeconds } = run.options;
  const openedAt = new Date();
  // The customers after the bench's own and the writes measurement's busy one.
  const [long, short] = [1, 2].map((n) => unopenedBalance({ balanceId: balanceIdOf(customers + n), customerId: customerIdOf(customers + n), productId: BENCH_PRODUCT.id }));
  await registerBalanceRows(run.pool, [long!, short!]);
  await openBalances(run.eventStore, [long!, short!], openedAt.toISOString());
  const monthStart = (offset: number) => Date.UTC(openedAt.getUTCFullYear(), openedAt.getUTCMonth() + 1 + offset, 1);
  // A month's usage spread from noon on its first day to its 28th, as a balance metered all month
  // is: its statements may find starts inside it. Each month's entries are the same to any
  // statement from its first midnight or its first 09:00.
  const recordedIn = (offset: number, count: number) => (sequence: number) =>
    new Date(monthStart(offset) + DAY_MS / 2 + Math.floor((sequence * SPREAD_DAYS * DAY_MS) / count)).toISOString();
  progress(`statements: copying ${HISTORY_MONTHS} months of ${formatCount(MONTH_ENTRIES)} usage entries into ${long!.context.balanceId} (untimed)`);
  for (let month = 0; month < HISTORY_MONTHS; month += 1) {
    await copyUsageHistory(run.pool, [long!], MONTH_ENTRIES, `${run.id}-statement-${month}`, recordedIn(month, MONTH_ENTRIES));
  }
  // Round-robin over the two: the month's entries on each.
  await copyUsageHistory(run.pool, [long!, short!], 2 * MONTH_ENTRIES, `${run.id}-statement-${HISTORY_MONTHS}`, recordedIn(HISTORY_MONTHS, 2 * MONTH_ENTRIES));
  // The same entries either way: those of the month stated.
  const statementPath = (balanceId: string, hour = 0, months = 1, endMonth = HISTORY_MONTHS + 1) =>
    `/v1/credit-balances/${balanceId}/statement?from=${new Date(monthStart(endMonth - months) + hour * HOUR_MS).toISOString()}&to=${new Date(monthStart(endMonth) + hour * HOUR_MS).toISOString()}`;

  progress(`statements: the month alone, on ${short!.context.balanceId}`);
  const alone = await loadApiRoute(run, { route: 'statement', statementPath: statementPath(short!.context.balanceId), connections: CONNECTIONS });
  // First on the long ledger: no start kept at a midnight yet, so what it reads is its own doing.
  progress(`statements: the month from 09:00 after ${formatCount(HISTORY_MONTHS * MONTH_ENTRIES)} entries, on ${long!.context.balanceId}`);
  const fromNine = await loadApiRoute(run, { route: 'statement', statementPath: statementPath(long!.context.balanceId, 9), connections: CONNECTIONS });
  progress(`statements: the first on the long ledger took ${Math.round(fromNine.firstMs)} ms`);
  progress(`statements: the month after ${formatCount(HISTORY_MONTHS * MONTH_ENTRIES)} entries, on ${long!.context.balanceId}`);
  const after = await loadApiRoute(run, { route: 'statement', statementPath: statementPath(long!.context.balanceId), connections: CONNECTIONS }, 'api-statements');
  progress(`statements: the month before it, with ${formatCount(MONTH_ENTRIES)} entries after its end, on ${long!.context.balanceId}`);
  const monthBefore = await loadApiRoute(run, { route: 'statement', statementPath: statementPath(long!.context.balanceId, 0, 1, HISTORY_MONTHS), connections: CONNECTIONS });
  progress(`statements: the year to the month's end, ${formatCount((HISTORY_MONTHS + 1) * MONTH_ENTRIES)} entries, on ${long!.context.balanceId}`);
  const year = await loadApiRoute(run, { route: 'statement', statementPath: statementPath(long!.context.balanceId, 0, HISTORY_MONTHS + 1), connections: CONNECTIONS });
  return {
    connections: CONNECTIONS,
    durationSeconds: lookupSeconds,
    periodEntries: MONTH_ENTRIES,
    historyEntries: HISTORY_MONTHS * MONTH_ENTRIES,
    firstMs: fromNine.firstMs,
    fromNine: fromNine.load,
    longLedger: after.load,
    monthBefore: monthBefore.load,
    year: year.load,
    shortLedger: alone.load,
    peakRssBytes: Math.max(alone.peakRssBytes, fromNine.peakRssBytes, after.peakRssBytes, monthBefore.peakRssBytes, year.peakRssBytes),
    ...(after.profile !== undefined ? { profile: after.profile } : {}),
  };
}
