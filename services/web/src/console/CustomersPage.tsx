import { useEffect, useState } from 'preact/hooks';
import type { ApiClient } from '../shared/apiClient';
import type { CustomerSummary, Page } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ErrorMessage, Field, Pager, ScrollingTable, usePager } from '../shared/ui';
import { href, navigate } from './router';

/** Customers by id: search by prefix, page through, or open one by its exact id (also a new one, to add its first balance). */
export function CustomersPage({ api }: { api: ApiClient }) {
  const [prefix, setPrefix] = useState('');
  const [query, setQuery] = useState('');
  const pager = usePager();
  const [page, setPage] = useState<Page<CustomerSummary>>();
  const [error, setError] = useState<string>();
  const after = pager.cursor;
  useEffect(() => {
    api.get<Page<CustomerSummary>>('/customers', { query: { prefix: query, after, limit: '25' } }).then(
      (found) => {
        setPage(found);
        setError(undefined);
      },
      (failure: Error) => setError(failure.message),
    );
  }, [api, query, after]);
  return (
    <section>
      <h1>Customers</h1>
      <form
        class="inline-form"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          pager.reset();
          setQuery(prefix.trim());
        }}
      >
        <Field label="Customer id" value={prefix} onInput={(event) => setPrefix(event.currentTarget.value)} hint="Search by the start of the id, or open a customer by the whole id." />
        <button type="submit">Search</button>
        <button type="button" class="secondary" disabled={prefix.trim() === ''} onClick={() => navigate({ screen: 'customer', customerId: prefix.trim() })}>
          Open customer
        </button>
      </form>
      <ErrorMessage message={error} />
      <ScrollingTable caption={query === '' ? 'All customers' : `Customers whose id starts with “${query}”`} columns={['Customer', 'Balances', 'Customer since']}>
        <tbody>
          {page?.items.length === 0 && (
            <tr>
              <td colSpan={3}>No customers found.</td>
            </tr>
          )}
          {page?.items.map((customer) => (
            <tr key={customer.id}>
              <td>
                <a href={href({ screen: 'customer', customerId: customer.id })}>{customer.id}</a>
              </td>
              <td class="number">{customer.balances}</td>
              <td>{formatTime(customer.since)}</td>
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
      <Pager pager={pager} next={page?.next} />
    </section>
  );
}
