import { useMemo, useState } from 'preact/hooks';
import { ApiError, createApiClient, everyItem, newIdempotencyKey, path, type ApiClient } from '../shared/apiClient';
import type { BalanceChange, Bundle, CreditBalance, PurchaseOption, Subscription } from '../shared/apiTypes';
import { BalanceFigure } from '../shared/BalanceFigure';
import { bundleTerms, formatCredits, formatPrice, formatTime, periodText, sameBundleTerms } from '../shared/format';
import { AutoRechargeSettings } from '../shared/AutoRechargeSettings';
import { BalanceStatement } from '../shared/BalanceStatement';
import { DownloadLedgerButton } from '../shared/DownloadLedgerButton';
import { RecentConsumption } from '../shared/RecentConsumption';
import { Dialog, ErrorMessage, Loading, ScrollingTable, useBusyAction, usePolling } from '../shared/ui';
import { useRecentConsumption } from '../shared/useRecentConsumption';
import { takePortalToken, tokenCustomer } from './portalToken';

const REFRESH_MS = 5000;

/** The customer portal: the customer's balances, consumption, recent ledger, purchase options and subscriptions. */
export function PortalApp() {
  const [token] = useState(takePortalToken);
  const [expired, setExpired] = useState(false);
  const claims = token === undefined ? undefined : tokenCustomer(token);
  const api = useMemo(() => (token === undefined ? undefined : createApiClient({ kind: 'bearer', token }, () => setExpired(true))), [token]);
  if (api === undefined || claims === undefined || expired) {
    return (
      <main class="sign-in">
        <h1>Your credits</h1>
        <p role="alert">This link is not valid or has expired. Ask for a new link where you got this one.</p>
      </main>
    );
  }
  return <Portal api={api} customerId={claims.customerId} expiresAt={claims.expiresAt} />;
}

function Portal({ api, customerId, expiresAt }: { api: ApiClient; customerId: string; expiresAt: Date }) {
  const [balances, setBalances] = useState<CreditBalance[]>();
  // undefined until first read: until then a balance shows no purchase options rather than none.
  const [options, setOptions] = useState<PurchaseOption[]>();
  const [subscriptions, setSubscriptions] = useState<Subscription[]>([]);
  const [readAt, setReadAt] = useState(Date.now());
  const [optionsReadAt, setOptionsReadAt] = useState(Date.now());
  const [version, setVersion] = useState(0);
  const readOptions = () => everyItem<PurchaseOption>(api, path`/customers/${customerId}/purchase-options`);
  const deps = [api, customerId, version];
  // Each section read on its own: one that fails says so where it goes, the others still show. A
  // read answered after a newer one began (a purchase made meanwhile) keeps nothing: it could
  // put back what the newer one replaced.
  const error = usePolling(
    async (current) => {
      const read = await everyItem<CreditBalance>(api, path`/customers/${customerId}/credit-balances`);
      if (!current()) return;
      setBalances(read);
      setReadAt(Date.now());
    },
    REFRESH_MS,
    deps,
  );
  const unoffered = usePolling(
    async (current) => {
      // Stamped with the read's start: a read sent before a refusal for changed terms may not have their new ones.
      const startedAt = Date.now();
      const offered = await readOptions();
      if (!current()) return;
      setOptions(offered);
      setOptionsReadAt(startedAt);
    },
    REFRESH_MS,
    deps,
  );
  const unsubscribed = usePolling(
    async (current) => {
      const subscribed = await everyItem<Subscription>(api, path`/customers/${customerId}/subscriptions`);
      if (current()) setSubscriptions(subscribed);
    },
    REFRESH_MS,
    deps,
  );
  return (
    <>
      <header class="top">
        <h1 class="brand">Your credits</h1>
        <small>
          {customerId} · this link works until {formatTime(expiresAt.toISOString())}
        </small>
      </header>
      <main>
        <ErrorMessage message={error} />
        {/* Said once, not in every balance: the same read serves them all. */}
        <ErrorMessage message={unoffered === undefined ? undefined : `Purchase options could not be read: ${unoffered}`} />
        <Loading read={balances} failure={error} />
        {balances?.length === 0 && <p>You have no credit balances yet.</p>}
        {balances?.map((balance) => (
          <PortalBalance
            key={balance.id}
            api={api}
            balance={balance}
            readAt={readAt}
            optionsReadAt={optionsReadAt}
            bundles={options === undefined ? undefined : (options.find((option) => option.balanceId === balance.id)?.bundles ?? [])}
            readBundles={async () => (await readOptions()).find((option) => option.balanceId === balance.id)?.bundles ?? []}
            onChanged={() => setVersion(version + 1)}
          />
        ))}
        {(subscriptions.length > 0 || unsubscribed !== undefined) && <PortalSubscriptions subscriptions={subscriptions} balances={balances ?? []} error={unsubscribed} />}
      </main>
    </>
  );
}

/**
 * When an item's next credits come and how many (the next period's terms: a change from then on
 * shows here, while the Grants column keeps the period in progress's), or when its last period
 * ends once the subscription is canceled.
 */
function nextGrantText(subscription: Subscription, item: Subscription['items'][number]): string {
  const current = item.currentPeriod;
  if (item.finalPeriod === null) {
    if (current === null) return `Starts ${formatTime(subscription.startsAt)}`;
    return item.next === null ? `Next credits ${formatTime(current.end)}` : `Next credits ${formatTime(item.next.start)}: ${formatCredits(item.next.creditsPerPeriod)}`;
  }
  if (current !== null && current.index <= item.finalPeriod) return `Canceled: ends ${formatTime(current.end)}`;
  return 'Ended';
}

/** The customer's subscriptions: each plan, what it grants per period and when the next grant comes. */
function PortalSubscriptions({ subscriptions, balances, error }: { subscriptions: readonly Subscription[]; balances: readonly CreditBalance[]; error: string | undefined }) {
  const productName = (productId: string) => balances.find((balance) => balance.productId === productId)?.name ?? productId;
  return (
    <section class="card" aria-labelledby="portal-subscriptions">
      <h2 id="portal-subscriptions">Your subscriptions</h2>
      <ErrorMessage message={error} />
      {subscriptions.length > 0 && (
        <ScrollingTable caption="Subscriptions" columns={['Plan', 'Product', 'Grants', 'Next']}>
          <tbody>
            {subscriptions.flatMap((subscription) =>
              subscription.items.map((item) => (
                <tr key={`${subscription.id} ${item.productId}`}>
                  <td>{subscription.planName}</td>
                  <td>{productName(item.productId)}</td>
                  <td class="number">
                    {formatCredits(item.creditsPerPeriod)} {periodText(item.period)}
                  </td>
                  <td>{nextGrantText(subscription, item)}</td>
                </tr>
              )),
            )}
          </tbody>
        </ScrollingTable>
      )}
    </section>
  );
}

/** A bundle's credits and price, as the purchase options list them and a purchase expects them. */
type BundleTerms = Pick<Bundle, 'credits' | 'price'>;

const termsOf = ({ credits, price }: BundleTerms): BundleTerms => ({ credits, price });

/** What the bought message says: the credits and price the ledger recorded, not the bundle as shown. */
function boughtText({ entry, balance }: BalanceChange): string {
  const price = entry.purchase === null ? '' : ` for ${formatPrice({ amount: entry.purchase.totalPrice, currency: entry.purchase.currency })}`;
  return `Bought ${formatCredits(entry.credits ?? '0')} credits${price}. Your balance is now ${formatCredits(balance.balance)}.`;
}

/**
 * A purchase sent and not yet answered for good: a retry sends it again as it was (its key and
 * the terms it expected), so one the first try made is answered, never made twice or refused as
 * changed. Dropped once refused (the terms changed: nothing was bought): the next click is a new
 * purchase at the terms shown then.
 */
interface PendingPurchase {
  readonly key: string;
  readonly expected: BundleTerms;
}

/** The map without `key`, a new one (state is never changed in place). */
function without<V>(map: ReadonlyMap<string, V>, key: string): ReadonlyMap<string, V> {
  const next = new Map(map);
  next.delete(key);
  return next;
}

function PortalBalance({
  api,
  balance,
  readAt,
  optionsReadAt,
  bundles,
  readBundles,
  onChanged,
}: {
  api: ApiClient;
  balance: CreditBalance;
  readAt: number;
  /** When the purchase options last read began. */
  optionsReadAt: number;
  /** The balance's bundles to buy: undefined until the purchase options are first read. */
  bundles: readonly Bundle[] | undefined;
  /** The balance's purchase options read again now: the auto-recharge form's, after a refusal for changed terms. */
  readBundles: () => Promise<readonly Bundle[]>;
  onChanged: () => void;
}) {
  const [shown, setShown] = useState(balance);
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  // The bundle whose purchase is being confirmed: Buy opens the dialog, its own Buy buys. Once
  // bought the dialog is gone, so a double click's second click buys nothing more; it opens on
  // Cancel, so a held Enter opens and cancels it and buys nothing; it stays open while its
  // purchase is in flight, so the answer lands in the dialog that sent it.
  const [confirming, setConfirming] = useState<Bundle>();
  const [busy, busyWhile] = useBusyAction();
  // One key per bundle until its purchase is answered for good: a retry buys once. Maps, not
  // objects: a bundle's id is the operator's (`constructor` is one), never an inherited member.
  const [pending, setPending] = useState<ReadonlyMap<string, PendingPurchase>>(new Map());
  // The terms each bundle was expected at when the API said they changed, and when: said until it is bought.
  const [changed, setChanged] = useState<ReadonlyMap<string, { readonly was: BundleTerms; readonly at: number }>>(new Map());
  if (BigInt(balance.position) > BigInt(shown.position)) setShown(balance);
  const { recent, consumption, readAt: now, error: unread } = useRecentConsumption(api, balance.id, { bucket: 'day', entries: 10, intervalMs: REFRESH_MS, position: shown.position });
  const headingId = `balance-${balance.id}`;
  const notices = (bundles ?? []).flatMap((bundle) => {
    const change = changed.get(bundle.id);
    if (change === undefined) return [];
    const refused = `The ${bundleTerms(change.was)} bundle changed before your purchase, so nothing was bought`;
    // Until the options are read again (optionsReadAt, the last read's start) the bundle shows the terms it had.
    if (optionsReadAt <= change.at) return [`${refused}. Reading its new terms…`];
    // The operator may have put the terms back meanwhile (compared by value, as the API does): nothing new to accept then.
    return [sameBundleTerms(bundle, change.was) ? `${refused}. Its terms are back as they were: buy it again if you still want it.` : `${refused}: it is now ${bundleTerms(bundle)}. Buy it again to accept.`];
  });
  /** Buys the bundle; whether the dialog is done with (bought, or refused for its terms, which the card then says). */
  const buy = async (bundle: Bundle): Promise<boolean> => {
    const { key, expected } = pending.get(bundle.id) ?? { key: newIdempotencyKey(), expected: termsOf(bundle) };
    setPending(new Map(pending).set(bundle.id, { key, expected }));
    setError(undefined);
    setMessage(undefined);
    try {
      const change = await api.post<BalanceChange>(path`/credit-balances/${balance.id}/purchases`, { body: { bundleId: bundle.id, expected }, idempotencyKey: key });
      if (BigInt(change.balance.position) > BigInt(shown.position)) setShown(change.balance);
      setPending((current) => without(current, bundle.id));
      setChanged((current) => without(current, bundle.id));
      setMessage(boughtText(change));
      onChanged();
      return true;
    } catch (failure) {
      // Refused (4xx but 429): the API keeps that key and body refused for good, so that a twin
      // of the request still in flight can never land after it; the next click is a new purchase,
      // with a new key, even at the same terms (an operator may have put them back). Anything
      // else (a network failure, 5xx, 429) may have bought: the key stays, a retry buys once.
      if (failure instanceof ApiError && failure.status >= 400 && failure.status < 500 && failure.status !== 429) {
        setPending((current) => without(current, bundle.id));
      }
      if (failure instanceof ApiError && failure.code === 'purchase_terms_changed') {
        setChanged((current) => new Map(current).set(bundle.id, { was: expected, at: Date.now() }));
        onChanged();
        return true;
      }
      setError(failure instanceof ApiError ? failure.message : String(failure));
      return false;
    }
  };
  // A retry sends what the first try sent, under its key: the dialog shows those terms, whatever the bundle's are now.
  const retried = confirming === undefined ? undefined : pending.get(confirming.id);
  const terms = retried?.expected ?? confirming;
  return (
    <section class="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{shown.name}</h2>
      <BalanceFigure balance={shown} readAt={readAt} now={now} />
      <h3>Purchase options</h3>
      {bundles === undefined ? null : bundles.length === 0 ? (
        <p>Nothing to buy for this balance.</p>
      ) : (
        <ul class="bundles">
          {bundles.map((bundle) => (
            <li key={bundle.id} class="bundle">
              <span>
                <strong>{formatCredits(bundle.credits)} credits</strong> for {formatPrice(bundle.price)}
              </span>
              <button
                type="button"
                aria-label={`Buy ${bundleTerms(bundle)} of ${shown.name}`}
                onClick={() => {
                  setError(undefined);
                  setConfirming(bundle);
                }}
              >
                Buy
              </button>
            </li>
          ))}
        </ul>
      )}
      {notices.map((notice) => (
        <p key={notice} class="error" role="alert">
          {notice}
        </p>
      ))}
      {message !== undefined && (
        <p class="ok" role="status">
          {message}
        </p>
      )}
      <Dialog title={terms === undefined ? '' : `Buy ${bundleTerms(terms)}`} open={confirming !== undefined} onClose={() => setConfirming(undefined)} busy={busy ? 'Buying…' : undefined}>
        {confirming !== undefined && terms !== undefined && (
          <>
            <p>{`${formatCredits(terms.credits)} credits are added to ${shown.name} at once, billed as one purchase of ${formatPrice(terms.price)}.`}</p>
            {retried !== undefined && !busy && <p>{`Your purchase of ${bundleTerms(terms)} was not answered. Buy sends it again as it was, at those terms: it is bought at most once.`}</p>}
            <ErrorMessage message={error} />
            <div class="actions">
              <button
                type="button"
                disabled={busy}
                onClick={busyWhile(async () => {
                  if (await buy(confirming)) setConfirming(undefined);
                })}
              >
                Buy
              </button>
              <button type="button" class="secondary" autofocus disabled={busy} onClick={() => setConfirming(undefined)}>
                Cancel
              </button>
            </div>
          </>
        )}
      </Dialog>
      <RecentConsumption recent={recent} consumption={consumption} error={unread} chartTitle="Consumption in the last 30 days" caption={`Recent activity: ${shown.name}`} audience="portal" />
      <BalanceStatement api={api} balanceId={balance.id} />
      {bundles !== undefined && bundles.length > 0 && <AutoRechargeSettings api={api} balance={shown} bundles={bundles} readBundles={readBundles} audience="portal" />}
      <div class="actions">
        <DownloadLedgerButton api={api} balanceId={balance.id} label="Download all activity (CSV)" />
      </div>
    </section>
  );
}
