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
function decideOpenings(balances: readonly WorkloadBalance[], at: string) {
  const startingBalance = parsePositiveCredits(STARTING_CREDITS, 'startingBalance');
  return decideAppends(
    balances.map((balance) => ({
      balance,
      commandId: commandIds.open(balance.context.balanceId),
      command: {
        type: 'OpenBalance',
        balanceId: balance.context.balanceId,
        customerId: balance.context.customerId,
        productId: balance.context.productId,
        name: BENCH_PRODUCT.name,
        lowBalanceThreshold: null,
        startingBalance,
        at,
      },
    })),
  );
}

/** Opens the balances through the event store, up to `chunk` streams per atomic append. */
export async function openBalances(eventStore: EventStore, balances: readonly WorkloadBalance[], at: string, chunk = 500): Promise<void> {
  for (let start = 0; start < balances.length; start += chunk) {
    await eventStore.appendMany(decideOpenings(balances.slice(start, start + chunk), at));
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

/** More balances of the product registerBenchBalances created, in the same one INSERT. */
export async function registerBalanceRows(pool: Pool, balances: readonly WorkloadBalance[]): Promise<void> {
  const contexts = balances.map((balance) => balance.context);
  await pool.query(
    'INSERT INTO credit_balances (id, customer_id, product_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
    [contexts.map((c) => c.balanceId), contexts.map((c) => c.customerId), contexts.map((c) => c.productId)],
  );
}
