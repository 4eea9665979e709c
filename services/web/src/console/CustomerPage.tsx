import { useState } from 'preact/hooks';
import { errorMessage, everyItem, path, type ApiClient } from '../shared/apiClient';
import type { CreditBalance, PortalLink } from '../shared/apiTypes';
import { formatTime } from '../shared/format';
import { ErrorMessage, Loading, useBusyAction, usePolling } from '../shared/ui';
import { AddBalanceDialog } from './BalanceDialogs';
import { BalanceSection } from './BalanceSection';
import { SubscriptionsTab } from './SubscriptionsTab';
import { UsageEventLookup } from './UsageEventLookup';
import { href } from './router';

/** How often the open customer page reads its balances, consumption and newest ledger entries. */
export const REFRESH_MS = 2000;

type Tab = 'credits' | 'subscriptions';

export function CustomerPage({ api, customerId }: { api: ApiClient; customerId: string }) {
  const [tab, setTab] = useState<Tab>('credits');
  const [link, setLink] = useState<PortalLink>();
  const [error, setError] = useState<string>();
  const [creatingLink, busyWhileCreatingLink] = useBusyAction();
  return (
    <section>
      <p>
        <a href={href({ screen: 'customers' })}>← Customers</a>
      </p>
      <div class="title-row">
        <h1>Customer {customerId}</h1>
        <button
          type="button"
          class="secondary"
          disabled={creatingLink}
          onClick={busyWhileCreatingLink(async () => {
            // The link or why it was not made, never one beside the other: each try starts from neither.
            setLink(undefined);
            setError(undefined);
            try {
              setLink(await api.post<PortalLink>(path`/customers/${customerId}/portal-sessions`));
            } catch (failure) {
              setError(errorMessage(failure));
            }
          })}
        >
          Create portal link
        </button>
      </div>
      <ErrorMessage message={error} />
      {link !== undefined && (
        <div class="notice" role="status">
          <label for="portal-link">Portal link</label>
          <input id="portal-link" readOnly value={link.url} onFocus={(event) => event.currentTarget.select()} />
          <small>Admits {customerId} alone until {formatTime(link.expiresAt)}. Send it to the customer's browser only.</small>
        </div>
      )}
      <div role="tablist" aria-label="Customer" class="tabs">
        {(['credits', 'subscriptions'] as const).map((name) => (
          <button
            type="button"
            role="tab"
            key={name}
            id={`tab-${name}`}
            aria-selected={tab === name}
            aria-controls={`panel-${name}`}
            tabIndex={tab === name ? 0 : -1}
            onClick={() => setTab(name)}
            onKeyDown={(event) => {
              // Arrow keys move between tabs, as the ARIA tabs pattern has it.
              if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
                const next = name === 'credits' ? 'subscriptions' : 'credits';
                setTab(next);
                document.getElementById(`tab-${next}`)?.focus();
              }
            }}
          >
            {name === 'credits' ? 'Credits' : 'Subscriptions'}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === 'credits' ? <CreditsTab api={api} customerId={customerId} /> : <SubscriptionsTab api={api} customerId={customerId} />}
      </div>
    </section>
  );
}

function CreditsTab({ api, customerId }: { api: ApiClient; customerId: string }) {
  const [balances, setBalances] = useState<CreditBalance[]>();
  const [readAt, setReadAt] = useState(Date.now());
  const [adding, setAdding] = useState(false);
  const [version, setVersion] = useState(0);
  const error = usePolling(
    async () => {
      setBalances(await everyItem<CreditBalance>(api, path`/customers/${customerId}/credit-balances`));
      setReadAt(Date.now());
    },
    REFRESH_MS,
    [api, customerId, version],
  );
  return (
    <>
      <div class="title-row">
        <h2>Credit balances</h2>
        <button type="button" onClick={() => setAdding(true)}>
          Add credit balance
        </button>
      </div>
      <ErrorMessage message={error} />
      <Loading read={balances} failure={error} />
      {balances?.length === 0 && <p>No credit balances yet.</p>}
      {balances?.map((balance) => <BalanceSection key={balance.id} api={api} balance={balance} readAt={readAt} onChanged={() => setVersion(version + 1)} />)}
      <UsageEventLookup api={api} customerId={customerId} balances={balances ?? []} />
      <AddBalanceDialog api={api} customerId={customerId} open={adding} onClose={() => setAdding(false)} onAdded={() => setVersion(version + 1)} />
    </>
  );
}
