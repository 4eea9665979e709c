import { guardCatalogQuery as guarded } from '@tally/catalog';
import { textArrayLiteral } from '@tally/postgres';
import type { Pool } from 'pg';
import type { BalanceRef, BalanceRegistry } from './balanceRegistry';
import { DuplicateBalanceError } from './ledgerErrors';

export function createPostgresBalanceRegistry(options: { pool: Pool }): BalanceRegistry {
  const { pool } = options;
  // Under BalanceRef's names, so that a row is a BalanceRef as it stands.
  const balanceColumns = 'id, customer_id AS "customerId", product_id AS "productId"';

  return {
    registerBalance: (balance) =>
      guarded(async () => {
        // ON CONFLICT DO NOTHING, then read the winner: the 409 can name the balance that exists.
        const inserted = await pool.query<BalanceRef>(
          `INSERT INTO credit_balances (id, customer_id, product_id) VALUES ($1, $2, $3)
           ON CONFLICT (customer_id, product_id) DO NOTHING
           RETURNING ${balanceColumns}`,
          [balance.id, balance.customerId, balance.productId],
        );
        if (inserted.rows[0] !== undefined) return inserted.rows[0];
        const { rows } = await pool.query<BalanceRef>(
          `SELECT ${balanceColumns} FROM credit_balances WHERE customer_id = $1 AND product_id = $2`,
          [balance.customerId, balance.productId],
        );
        throw DuplicateBalanceError.of(balance.customerId, balance.productId, rows[0]?.id ?? '');
      }),

    getBalance: (balanceId) =>
      guarded(async () => {
        const { rows } = await pool.query<BalanceRef>(`SELECT ${balanceColumns} FROM credit_balances WHERE id = $1`, [balanceId]);
        return rows[0];
      }),

    findBalance: (customerId, productId) =>
      guarded(async () => {
        const { rows } = await pool.query<BalanceRef>(
          `SELECT ${balanceColumns} FROM credit_balances WHERE customer_id = $1 AND product_id = $2`,
          [customerId, productId],
        );
        return rows[0];
      }),

    listCustomerBalances: (customerId) =>
      guarded(async () => {
        const { rows } = await pool.query<BalanceRef>(
          `SELECT ${balanceColumns} FROM credit_balances WHERE customer_id = $1 ORDER BY created_at, id`,
          [customerId],
        );
        return rows;
      }),

    balancesOfCustomers: (customerIds) =>
      guarded(async () => {
        const byCustomer = new Map<string, BalanceRef[]>();
        if (customerIds.length === 0) return byCustomer;
        const { rows } = await pool.query<BalanceRef>(
          `SELECT ${balanceColumns} FROM credit_balances WHERE customer_id = ANY($1::text[]) ORDER BY created_at, id`,
          [textArrayLiteral(customerIds)],
        );
        for (const row of rows) {
          const list = byCustomer.get(row.customerId) ?? [];
          list.push(row);
          byCustomer.set(row.customerId, list);
        }
        return byCustomer;
      }),

    registrationAges: (balanceIds) =>
      guarded(async () => {
        const ages = new Map<string, number>();
        if (balanceIds.length === 0) return ages;
        // now() and created_at (its DEFAULT now()) by the same clock: an age no host's skew changes.
        const { rows } = await pool.query<{ id: string; ageMs: number }>(
          `SELECT id, (extract(epoch FROM now() - created_at) * 1000)::float8 AS "ageMs" FROM credit_balances WHERE id = ANY($1::text[])`,
          [textArrayLiteral(balanceIds)],
        );
        for (const row of rows) ages.set(row.id, Math.max(0, row.ageMs));
        return ages;
      }),
  };
}

/**
 * Every registered balance's id in id order, a page at a time after `after` (keyset paging on the
 * primary key: each page one index range scan, however many balances; a balance registered while
 * paging is met if its id sorts after the page in hand). For operator commands over all balances.
 */
export function createPostgresBalancePages(options: { pool: Pool }): (after: string | undefined, limit: number) => Promise<string[]> {
  const { pool } = options;
  return (after, limit) =>
    guarded(async () => {
      const { rows } = await pool.query<{ id: string }>({
        name: 'tally_ledger_balance_ids_page',
        text: 'SELECT id FROM credit_balances WHERE $1::text IS NULL OR id > $1::text ORDER BY id LIMIT $2',
        values: [after ?? null, limit],
      });
      return rows.map((row) => row.id);
    });
}
