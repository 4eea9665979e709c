import type { Pool } from 'pg';
import { guardCatalogQuery as guarded } from '@tally/catalog';

/** A customer as the operator console lists it: one who has at least one balance. */
export interface CustomerSummary {
  readonly customerId: string;
  readonly balances: number;
  /** When the customer's first balance was opened. */
  readonly since: Date;
}

export interface CustomerQuery {
  /** Only ids starting with this text; '' for every customer. */
  readonly prefix: string;
  /** The last id of the previous page (exclusive), null for the first page. */
  readonly after: string | null;
  readonly limit: number;
}

/** Who Tally's customers are: the balance registry read by customer id, for search and pagination. */
export interface CustomerDirectory {
  listCustomers(query: CustomerQuery): Promise<CustomerSummary[]>;
}

/**
 * The customers of the balance registry (`credit_balances`, migration 002): a customer exists for
 * Tally once a balance of theirs is opened. Ordered by id byte by byte (collation "C", whatever the
 * database's), in which the `after` cursor compares too, so pages neither skip nor repeat a customer.
 */
export function createPostgresCustomerDirectory(options: { readonly pool: Pool }): CustomerDirectory {
  const { pool } = options;
  return {
    listCustomers: ({ prefix, after, limit }) =>
      guarded(async () => {
        const { rows } = await pool.query<{ customer_id: string; balances: number; since: Date }>({
          name: 'tally_catalog_list_customers',
          text: `SELECT customer_id, count(*)::int AS balances, min(created_at) AS since
                 FROM credit_balances
                 WHERE starts_with(customer_id, $1) AND ($2::text IS NULL OR customer_id COLLATE "C" > $2)
                 GROUP BY customer_id ORDER BY customer_id COLLATE "C" LIMIT $3`,
          values: [prefix, after, limit],
        });
        return rows.map((row) => ({ customerId: row.customer_id, balances: row.balances, since: row.since }));
      }),
  };
}
