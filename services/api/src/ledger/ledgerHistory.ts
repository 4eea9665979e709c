import { BalanceNotFoundError, type BalanceRegistry, type LedgerPage, type LedgerService, type StatementBoundary, type StatementStarts } from '@tally/ledger';
import type { Logger } from 'pino';
import type { DeadLetterLog, LoggedDeadLetter } from '@tally/metering';
import type { Page } from '../pagination';
import { createStatementFold, type BalanceStatement } from './balanceStatement';
import { ledgerEntryView, type LedgerAudience, type LedgerEntryView } from './ledgerEntryView';
import type { UsageEntriesView } from './usageEntriesView';

/** A balance's ledger as the API shows it: its events, newest first a page at a time, or all of them oldest first. */
export interface LedgerHistory {
  /** Throws BalanceNotFoundError for an unknown balance; a page past the end is empty. */
  page(balanceId: string, page: { readonly limit: number; readonly before?: bigint }, audience: LedgerAudience): Promise<Page<LedgerEntryView>>;
  /**
   * Every entry, oldest first, a page of `pageSize` at a time, read as they are taken, so the
   * whole ledger is never in memory. The first `next()` throws BalanceNotFoundError for an unknown
   * balance, before anything is answered.
   */
  chronological(balanceId: string, pageSize: number, audience: LedgerAudience): AsyncGenerator<readonly LedgerEntryView[], void, undefined>;
  /**
   * The statement of the period `[from, to)` (epoch milliseconds, see createStatementFold), read
   * oldest first from the latest statement start kept at or before `from` (or the ledger's first
   * entry) to the period's first entry, then from the latest kept at or before `to` when that is
   * further on, to the period's end. Throws BalanceNotFoundError for an unknown balance, and the
   * signal's reason once it is aborted, before the next page is read.
   */
  statement(balanceId: string, period: { readonly from: number; readonly to: number }, signal?: AbortSignal): Promise<BalanceStatement>;
  /**
   * What each of the customer's usage events did, in the order asked: metered or not, its entries
   * on each of the customer's balances, and its dead letters when there is a dead-letter log.
   */
  usage(customerId: string, usageEventIds: readonly string[]): Promise<UsageEntriesView[]>;
}

/** Entries a statement reads at a time: a page of the event store, not the whole stream in memory. */
const STATEMENT_PAGE_SIZE = 1000;
/**
 * A statement's first page while it seeks its opening with a skip to the end's start to come (a
 * period from an instant no start was kept at, such as 09:00 on a billing day): it doubles up to
 * STATEMENT_PAGE_SIZE, so a few hundred entries to the opening read a few hundred, not a thousand.
 */
const STATEMENT_SEEKING_PAGE_SIZE = 128;

/**
 * A statement keeps a start about every this many entries it reads (createStatementFold's
 * `startsEvery`), whatever instants it was asked for: a later statement then reads about this
 * many entries near each end of its period at most (a page of the event store; only near its
 * end when a start was kept at its start), and a balance keeps a start and a stored state per
 * this many entries, against the ledger's own row for each.
 */
const STATEMENT_STARTS_EVERY = 1_000;

const DAY_MS = 86_400_000;
/** Epoch milliseconds count no leap seconds: a multiple of a day is a UTC midnight. */
const startOfUtcDay = (at: number) => at % DAY_MS === 0;

/** The most letters one usage event lists: a producer sending the same bad event again and again needs no more to see why. */
const MAX_LETTERS_PER_USAGE_EVENT = 20;

export interface LedgerHistoryDeps {
  readonly ledger: LedgerService;
  /**
   * `balancesOfCustomers` finds a usage lookup's balances: the process's registry cache in the
   * main job (createBalanceRegistryCache), so a lookup is one round trip to PostgreSQL.
   */
  readonly balanceRegistry: Pick<BalanceRegistry, 'getBalance' | 'balancesOfCustomers'>;
  /** Where a usage lookup finds the usage event's dead letters; without it, a lookup lists none. */
  readonly deadLetters?: Pick<DeadLetterLog, 'recent'>;
  /** Where statements start instead of the ledger's first entry; without it, each reads the ledger from its start. */
  readonly statementStarts?: StatementStarts;
  /**
   * Which of a statement's edges (epoch milliseconds) are kept as starts however close to the
   * previous: by default the starts of UTC days, a calendar month's edges as the console, the
   * portal and the defaults ask them (at most one a day per balance). Any other edge is kept when
   * `statementStartsEvery` entries or more separate it from the previous start.
   */
  readonly keepsStatementStart?: (at: number) => boolean;
  /** See STATEMENT_STARTS_EVERY, the default; smaller in tests. */
  readonly statementStartsEvery?: number;
  /** Told when a statement's starts could not be kept (the statement is answered all the same). */
  readonly logger?: Logger;
}

export function createLedgerHistory(deps: LedgerHistoryDeps): LedgerHistory {
  // The registry, not the page, says whether the balance exists: a page past the end is empty, not a 404.
  const mustExist = async (balanceId: string) => {
    if ((await deps.balanceRegistry.getBalance(balanceId)) === undefined) throw new BalanceNotFoundError(`no credit balance with id "${balanceId}"`);
  };
  // The one walk of a stream oldest first, a page at a time, for the export and the statement;
  // its callers ask the registry first, once (a statement walks again after each skip).
  // `firstPageSize`: pages that start smaller and double up to `pageSize`, for a caller that
  // may need only a few entries of the first.
  async function* oldestFirst(balanceId: string, pageSize: number, refunds: boolean, from?: bigint, firstPageSize = pageSize): AsyncGenerator<LedgerPage, void, undefined> {
    let after = from;
    let limit = Math.min(firstPageSize, pageSize);
    do {
      const page = await deps.ledger.readLedger(balanceId, { order: 'oldest', limit, refunds, ...(after !== undefined ? { after } : {}) });
      yield page;
      after = page.next ?? undefined;
      limit = Math.min(limit * 2, pageSize);
    } while (after !== undefined);
  }
  /**
   * The starts a fold found past those it read from (its start's revision, and the one it skipped
   * to, if any), as deps.keepsStatementStart and deps.statementStartsEvery choose them.
   */
  const keepStarts = async (
    statementStarts: StatementStarts,
    balanceId: string,
    [from, skippedTo]: readonly [bigint, bigint | undefined],
    found: readonly StatementBoundary[],
    every: number,
  ) => {
    const keepsAt = deps.keepsStatementStart ?? startOfUtcDay;
    let previous = from;
    const kept = found.filter(({ at, before }) => {
      if (before.revision <= from) return false;
      // Past the start skipped to, that start is the previous one.
      if (skippedTo !== undefined && before.revision > skippedTo && previous < skippedTo) previous = skippedTo;
      if (!keepsAt(at) && before.revision - previous < BigInt(every)) return false;
      previous = before.revision;
      return true;
    });
    if (kept.length === 0) return;
    // Only a cache: a statement is answered whether or not its starts are kept.
    await statementStarts.keep(balanceId, kept).catch((error: unknown) => deps.logger?.warn({ err: error, balanceId }, "a statement's starts could not be kept"));
  };
  return {
    async page(balanceId, page, audience) {
      // Read beside the registry, not after it: the page of a balance that does not exist is an
      // empty one, answered as the registry's 404 all the same.
      const [, { items, next, refunds }] = await Promise.all([mustExist(balanceId), deps.ledger.readLedger(balanceId, page)]);
      return { items: items.map((item) => ledgerEntryView(item, audience, refunds)), next: next === null ? null : next.toString() };
    },

    async *chronological(balanceId, pageSize, audience) {
      await mustExist(balanceId);
      for await (const { items, refunds } of oldestFirst(balanceId, pageSize, true)) {
        if (items.length > 0) yield items.map((item) => ledgerEntryView(item, audience, refunds));
      }
    },

    async statement(balanceId, period, signal) {
      const { statementStarts } = deps;
      // The latest starts kept before each end of the period, read at once and beside the
      // registry (an unknown balance has no starts, and is answered 404 all the same).
      const [, start, end] = await Promise.all([
        mustExist(balanceId),
        statementStarts?.before(balanceId, period.from),
        statementStarts?.before(balanceId, period.to),
      ]);
      const every = deps.statementStartsEvery ?? STATEMENT_STARTS_EVERY;
      const fold = createStatementFold(period, start, every, end);
      // On from the start kept before the period's end once the opening is known (StatementFold.skip).
      let skippedTo = fold.skip();
      // Refunds are not read: a statement totals them by their own entries (source refund).
      const readAfter = (revision: bigint | undefined, firstPageSize?: number) => oldestFirst(balanceId, STATEMENT_PAGE_SIZE, false, revision, firstPageSize);
      // Sought with a skip to come, the opening is all that is wanted of the entries before the
      // end's start; those read past it are dropped at the skip, so pages start small.
      const seeking = skippedTo === undefined && end !== undefined && end.at > period.from;
      let pages = readAfter(skippedTo ?? start?.before.revision, seeking ? STATEMENT_SEEKING_PAGE_SIZE : undefined);
      try {
        read: while (!fold.complete()) {
          const page = await pages.next();
          if (page.done === true) break;
          signal?.throwIfAborted();
          for (const item of page.value.items) {
            if (!fold.add(item)) break read;
            const after = fold.skip();
            if (after !== undefined) {
              skippedTo = after;
              await pages.return();
              pages = readAfter(after);
              continue read;
            }
          }
        }
      } finally {
        await pages.return();
        // Also when the read was given up (a client gone, a timeout): the starts found on the way
        // hold all the same, and the next statement reads from the latest of them.
        if (statementStarts !== undefined) await keepStarts(statementStarts, balanceId, [start?.before.revision ?? -1n, skippedTo], fold.boundaries(), every);
      }
      return fold.statement();
    },

    async usage(customerId, usageEventIds) {
      // The letters need no balance: read beside the registry, not after it.
      const [byCustomer, letters] = await Promise.all([
        deps.balanceRegistry.balancesOfCustomers([customerId]),
        // One read of the log for every id asked (it keeps a thousand letters at most).
        deps.deadLetters?.recent(Number.MAX_SAFE_INTEGER, { customerId, usageEventIds }),
      ]);
      const productOf = new Map((byCustomer.get(customerId) ?? []).map((balance) => [balance.id, balance.productId]));
      const found = await deps.ledger.readUsageEntries(customerId, usageEventIds, [...productOf.keys()]);
      const lettersOf = new Map<string, LoggedDeadLetter[]>();
      for (const letter of letters ?? []) {
        const listed = lettersOf.get(letter.usageEventId!);
        if (listed === undefined) lettersOf.set(letter.usageEventId!, [letter]);
        else if (listed.length < MAX_LETTERS_PER_USAGE_EVENT) listed.push(letter);
      }
      return found.map(({ usageEventId, metered, balances }) => ({
        customerId,
        eventId: usageEventId,
        metered,
        balances: balances.map(({ balanceId, items, refunds }) => ({
          balanceId,
          productId: productOf.get(balanceId)!,
          entries: items.map((item) => ledgerEntryView(item, 'keyHolder', refunds)),
        })),
        ...(letters === undefined
          ? {}
          : {
              deadLetters: (lettersOf.get(usageEventId) ?? []).map(({ partition, offset, deadLetteredAt, errorCode, reason, sentBackAt }) => ({
                partition,
                offset,
                deadLetteredAt,
                errorCode,
                reason,
                sentBackAt,
              })),
            }),
      }));
    },
  };
}
