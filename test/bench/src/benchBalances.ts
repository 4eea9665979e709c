import type { CatalogStore } from '@tally/catalog';
import { creditProductFromDto, parsePositiveCredits, type CreditProductDto } from '@tally/domain';
import type { EventStore } from '@tally/event-store';
import { commandIds } from '@tally/ledger';
import type { Pool } from 'pg';
import { decideAppends, unopenedBalance, type WorkloadBalance } from './ledgerWorkload';

/**
 * The product every bench balance holds: a per-event and a per-unit rule on the same event, so
 * each usage event is priced by both (one CreditConsumed of their exact sum).
 */
export const BENCH_PRODUCT: CreditProductDto = {
  id: 'bench-api',
  name: 'Bench API',
  description: 'npm run bench',
  consumption: [
    { event: 'api_call', credits: '1' },
    { event: 'api_call', credits: '0.001', perUnitOf: 'tokens' },
  ],
  // No threshold and a starting balance no run can spend: every usage event is exactly one
  // ledger event, which the freshness measurement relies on (revision + 1 per event).
  lowBalanceThreshold: null,
  bundles: [],
};

const STARTING_CREDITS = '1000000000000';

/**
 * The second product of the metering workload (the default; `--one-balance` leaves it out):
 * every customer also holds a balance of it, which a rule on the same usage charges 1 credit an
 * event, so each usage event is two CreditConsumed; that balance opens just above its
 * low-balance threshold (warnedOpening), so about half-way through the run it drops below it and
 * a LowBalanceWarned is appended too, once per balance (the warning is not repeated until the
 * balance is back above the threshold, which nothing here does).
 */
export const BENCH_WARNED_PRODUCT: CreditProductDto = {
  id: 'bench-api-quota',
  name: 'Bench API quota',
  description: 'npm run bench: the second balance of each customer',
  consumption: [{ event: 'api_call', credits: '1' }],
  lowBalanceThreshold: '100',
  bundles: [],
};

/** How a bench balance opens: BENCH_PRODUCT's default; warnedOpening for BENCH_WARNED_PRODUCT's. */
export interface BenchOpening {
  readonly name: string;
  readonly lowBalanceThreshold: string | null;
  readonly startingBalance: string;
}

const BENCH_OPENING: BenchOpening = { name: BENCH_PRODUCT.name, lowBalanceThreshold: null, startingBalance: STARTING_CREDITS };

/**
 * Opening of the second balances when `events` are spread round-robin over `customers`: the
 * threshold plus half of a customer's events (each 1 credit), so the threshold is crossed half-way.
 */
export function warnedOpening(events: number, customers: number): BenchOpening {
  // Round-robin: every customer has at least this many events (some one more).
  const perCustomer = Math.floor(events / customers);
  const threshold = Number(BENCH_WARNED_PRODUCT.lowBalanceThreshold);
  return { name: BENCH_WARNED_PRODUCT.name, lowBalanceThreshold: String(threshold), startingBalance: String(threshold + Math.floor(perCustomer / 2)) };
}

export function warnedBalanceIdOf(index: number): string {
  return `quota-${String(index).padStart(INDEX_DIGITS, '0')}`;
}

/** Each customer's second balance, of BENCH_WARNED_PRODUCT. */
export function warnedBalances(customers: number): WorkloadBalance[] {
  return Array.from({ length: customers }, (_, index) =>
    unopenedBalance({ balanceId: warnedBalanceIdOf(index), customerId: customerIdOf(index), productId: BENCH_WARNED_PRODUCT.id }),
  );
}

/**
 * Ids end in a 12-digit zero-padded index because that is what redis-benchmark puts in place
 * of `__rand_int__`: its HGETALL then reads the very snapshot keys the API serves.
 */
export const BALANCE_ID_PREFIX = 'bal-';
const INDEX_DIGITS = 12;

export function balanceIdOf(index: number): string {
  return `${BALANCE_ID_PREFIX}${String(index).padStart(INDEX_DIGITS, '0')}`;
}

export function customerIdOf(index: number): string {
  return `cus-${String(index).padStart(INDEX_DIGITS, '0')}`;
}

export function benchBalances(customers: number): WorkloadBalance[] {
  return Array.from({ length: customers }, (_, index) =>
    unopenedBalance({ balanceId: balanceIdOf(index), customerId: customerIdOf(index), productId: BENCH_PRODUCT.id }),
  );
}

/** The opening of each balance, decided (its state moves on), as openBalances appends it. */
function decideOpenings(balances: readonly WorkloadBalance[], at: string, opening: BenchOpening = BENCH_OPENING) {
  const startingBalance = parsePositiveCredits(opening.startingBalance, 'startingBalance');
  const lowBalanceThreshold = opening.lowBalanceThreshold === null ? null : parsePositiveCredits(opening.lowBalanceThreshold, 'lowBalanceThreshold');
  return decideAppends(
    balances.map((balance) => ({
      balance,
      commandId: commandIds.open(balance.context.balanceId),
      command: {
        type: 'OpenBalance',
        balanceId: balance.context.balanceId,
        customerId: balance.context.customerId,
        productId: balance.context.productId,
        name: opening.name,
        lowBalanceThreshold,
        startingBalance,
        at,
      },
    })),
  );
}

/** Opens the balances through the event store, up to `chunk` streams per atomic append. */
export async function openBalances(
  eventStore: EventStore,
  balances: readonly WorkloadBalance[],
  at: string,
  opening: BenchOpening = BENCH_OPENING,
  chunk = 500,
): Promise<void> {
  for (let start = 0; start < balances.length; start += chunk) {
    await eventStore.appendMany(decideOpenings(balances.slice(start, start + chunk), at, opening));
  }
}

/** The balances as openBalances leaves them, without appending: their state after the opening. */
export function openedInMemory(balances: readonly WorkloadBalance[], at: string): WorkloadBalance[] {
  decideOpenings(balances, at);
  return [...balances];
}

/**
 * The product, and the balances in the catalog's registry (which the consumer reads to find a
 * customer's balances). One INSERT for all of them: registerBalance would take a round trip
 * each, for a registry row that is the same either way.
 */
export async function registerBenchBalances(pool: Pool, catalog: CatalogStore, balances: readonly WorkloadBalance[]): Promise<void> {
  await catalog.createProduct(creditProductFromDto(BENCH_PRODUCT));
  await registerBalanceRows(pool, balances);
}

/** More balances of a product the catalog has, in the same one INSERT. */
export async function registerBalanceRows(pool: Pool, balances: readonly WorkloadBalance[]): Promise<void> {
  const contexts = balances.map((balance) => balance.context);
  await pool.query(
    'INSERT INTO credit_balances (id, customer_id, product_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
    [contexts.map((c) => c.balanceId), contexts.map((c) => c.customerId), contexts.map((c) => c.productId)],
  );
}
