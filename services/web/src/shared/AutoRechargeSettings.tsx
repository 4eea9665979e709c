import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage, fieldErrors, path, type ApiClient } from './apiClient';
import type { AutoRecharge, CreditBalance } from './apiTypes';
import { bundleTerms, formatCredits, formatTime, sameBundleTerms } from './format';
import { ErrorMessage, Field, SelectField, useBusyAction } from './ui';

/** A bundle it may buy: the product's (console), or the portal's purchase options. */
interface RechargeBundle {
  readonly id: string;
  readonly credits: string;
  readonly price: { readonly amount: string; readonly currency: string };
}

type BundleTerms = Pick<RechargeBundle, 'credits' | 'price'>;

/** Two lists of bundles with the same ids at the same terms (compared by value, as the API does). */
function sameBundles(a: readonly RechargeBundle[] | undefined, b: readonly RechargeBundle[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((bundle, index) => bundle.id === b[index]!.id && sameBundleTerms(bundle, b[index]!));
}

/**
 * A save refused because the bundle's terms were no longer those shown (409 purchase_terms_changed):
 * the terms it was sent with, and how reading the bundle's terms again went.
 */
interface TermsRefusal {
  readonly bundleId: string;
  readonly was: BundleTerms;
  /** undefined while its terms are read again; else the read's failure, or null. */
  readonly unread: string | null | undefined;
}

/**
 * A bundle as its reader knows it: the operator by its id and terms, the customer (who never sees
 * the operator's ids) by its terms alone.
 */
function bundleText(bundle: RechargeBundle, audience: Audience): string {
  return audience === 'console' ? `${bundle.id}: ${bundleTerms(bundle)}` : bundleTerms(bundle);
}

type Audience = 'console' | 'portal';

/** What a refusal for changed terms says, against the bundle as the form now shows it: what saving again agrees to. */
function refusalText({ bundleId, was, unread }: TermsRefusal, offered: readonly RechargeBundle[] | undefined, audience: Audience): string {
  const named = `Not saved: the ${audience === 'console' ? bundleId : bundleTerms(was)} bundle`;
  if (unread === undefined) return `${named} changed. Reading its new terms…`;
  if (unread !== null) return `${named} changed, and its new terms could not be read (${unread}). Saving again reads them again.`;
  const bundle = offered?.find((candidate) => candidate.id === bundleId);
  if (bundle === undefined) return `${named} is no longer offered. Choose another.`;
  // Put back meanwhile (by value, as the API compares): the terms shown are those it was refused at.
  if (sameBundleTerms(bundle, was)) return `${named} changed, and is back at ${bundleTerms(bundle)}. Saving again agrees to ${bundleTerms(bundle)}.`;
  // The customer's name of it is already the terms it had.
  return `${named} changed to ${bundleTerms(bundle)}${audience === 'console' ? ` (it was ${bundleTerms(was)})` : ''}. Saving again agrees to ${bundleTerms(bundle)}.`;
}

/** What the summary says: off, or what it buys (to the customer by its terms alone, as bundleText). */
function describe(recharge: AutoRecharge | null, bundles: readonly RechargeBundle[] | undefined, audience: Audience): string {
  if (recharge === null) return 'Auto-recharge: off';
  const bundle = bundles?.find((candidate) => candidate.id === recharge.bundleId);
  const most = recharge.monthlyLimit === null ? '' : `, at most ${recharge.monthlyLimit} a month`;
  // The terms it buys at, kept when it was set; a setting from before they were kept buys at the bundle's of the moment.
  if (audience === 'portal') {
    const terms = recharge.terms ?? bundle;
    return `Auto-recharge: ${recharge.quantity} × ${terms === undefined ? 'a bundle no longer offered' : bundleTerms(terms)} below the warning limit${most}`;
  }
  const each = recharge.terms !== null ? ` (${bundleTerms(recharge.terms)} each)` : bundle === undefined ? '' : ` (${formatCredits(bundle.credits)} credits each)`;
  return `Auto-recharge: ${recharge.quantity} × ${recharge.bundleId}${each} below the warning limit${most}`;
}

/** Said when the bundle's terms are no longer those it was set at: it would buy nothing at its next warning. */
function changedTerms(recharge: AutoRecharge | null | undefined, bundles: readonly RechargeBundle[] | undefined) {
  const terms = recharge?.terms ?? null;
  const bundle = bundles?.find((candidate) => candidate.id === recharge?.bundleId);
  if (terms === null || bundle === undefined || sameBundleTerms(terms, bundle)) return null;
  return <p class="error">{`The bundle is now ${bundleTerms(bundle)}, not ${bundleTerms(terms)} as when this was set: it buys nothing until it is saved again.`}</p>;
}

/**
 * A balance's auto-recharge (GET/PUT/DELETE /v1/credit-balances/{id}/auto-recharge): when its
 * low-balance warning fires, the scheduler buys the chosen bundle of its product. Read when the
 * balance's card opens; saved and turned off from here. The console offers the product's bundles,
 * the portal its purchase options (the API refuses a portal any other).
 */
export function AutoRechargeSettings({
  api,
  balance,
  bundles,
  readBundles,
  audience,
}: {
  api: ApiClient;
  balance: CreditBalance;
  /** undefined while they load. */
  bundles: readonly RechargeBundle[] | undefined;
  /** Reads them again, from where `bundles` came: after a refusal for changed terms, the form shows them as they are now. */
  readBundles: () => Promise<readonly RechargeBundle[]>;
  audience: Audience;
}) {
  // undefined while loading; null when it has none.
  const [recharge, setRecharge] = useState<AutoRecharge | null>();
  const [bundleId, setBundleId] = useState('');
  const [quantity, setQuantity] = useState('1');
  // Empty: no limit.
  const [monthlyLimit, setMonthlyLimit] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState<string>();
  const [busy, busyWhile] = useBusyAction();
  const [refusal, setRefusal] = useState<TermsRefusal>();
  // The bundles read again after a refusal, shown over those given while these stay as they were
  // (by value: a read the caller began before the refusal brings nothing newer); the caller's own
  // read of a change takes over. What is shown is what a Save sends as expected.
  const [reread, setReread] = useState<{ readonly over: readonly RechargeBundle[] | undefined; readonly bundles: readonly RechargeBundle[] }>();
  const offered = reread !== undefined && sameBundles(reread.over, bundles) ? reread.bundles : bundles;
  // Saved only at terms shown: a bundle not among them (gone, or not read yet) is not sent without any.
  const selected = offered?.find((bundle) => bundle.id === bundleId);

  useEffect(() => {
    setBundleId((chosen) => (chosen === '' ? (bundles?.[0]?.id ?? '') : chosen));
  }, [bundles]);
  // Read again whenever the balance changes (a purchase it made moves it): what it last did stays
  // current. The form takes the setting's values the first time only, not over what is being typed.
  const filled = useRef(false);
  useEffect(() => {
    api.get<AutoRecharge>(path`/credit-balances/${balance.id}/auto-recharge`).then(
      (found) => {
        setRecharge(found);
        if (filled.current) return;
        filled.current = true;
        setBundleId(found.bundleId);
        setQuantity(String(found.quantity));
        setMonthlyLimit(found.monthlyLimit === null ? '' : String(found.monthlyLimit));
      },
      (failure: unknown) => (failure instanceof ApiError && failure.code === 'auto_recharge_not_set' ? setRecharge(null) : setError(errorMessage(failure))),
    );
  }, [api, balance.id, balance.position]);

  const noLimit = balance.lowBalanceThreshold === null;
  const limit = formatCredits(balance.lowBalanceThreshold ?? '0');
  return (
    <details>
      <summary>{recharge === undefined ? 'Auto-recharge' : describe(recharge, offered, audience)}</summary>
      <p>
        {noLimit
          ? audience === 'console'
            ? 'This balance has no warning limit, so nothing would make it buy: set one first (Edit balance).'
            : 'This balance has no warning limit, so it cannot recharge by itself: ask your provider to set one.'
          : audience === 'console'
            ? `When the balance falls below its warning limit (${limit}), buy this bundle of its product, once per warning, recorded as a purchase.`
            : `When your balance falls below ${limit} credits, buy this bundle by itself, once each time: each is a purchase, billed as one.`}
      </p>
      {recharge?.lastRechargedAt !== null && recharge?.lastRechargedAt !== undefined && <p>{`Last bought ${formatTime(recharge.lastRechargedAt)}.`}</p>}
      {recharge !== null && recharge !== undefined && (
        <p>{`Bought ${recharge.rechargesThisMonth} time${recharge.rechargesThisMonth === 1 ? '' : 's'} this month${recharge.monthlyLimit === null ? '' : ` of at most ${recharge.monthlyLimit}`}.`}</p>
      )}
      {changedTerms(recharge, offered)}
      {recharge?.lastRefusal !== null && recharge?.lastRefusal !== undefined && (
        <p class="error">{`The last auto-recharge was refused ${formatTime(recharge.lastRefusal.at)}: ${recharge.lastRefusal.reason}`}</p>
      )}
      <form
        class="inline-form"
        aria-label={`Auto-recharge: ${balance.name}`}
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          setErrors({});
          setError(undefined);
          setSaved(undefined);
          setRefusal(undefined);
          // Empty is no limit, so text that is not a number must not reach the API as one (NaN is null in JSON).
          const most = monthlyLimit.trim();
          const count = quantity.trim();
          // Number() would read "1e3" as 1000 and "0x10" as 16: only plain digits are a quantity.
          const refused = {
            ...(/^[1-9][0-9]*$/.test(count) ? {} : { quantity: 'must be a whole number of bundles, 1 or more' }),
            ...(most === '' || /^[0-9]+$/.test(most) ? {} : { monthlyLimit: 'must be a whole number of purchases, or empty for no limit' }),
          };
          if (Object.keys(refused).length > 0) {
            setErrors(refused);
            return;
          }
          // The terms the select shows: set at those, or refused (409 purchase_terms_changed) if the bundle changed since.
          if (selected === undefined) return;
          try {
            const set = await api.put<AutoRecharge>(path`/credit-balances/${balance.id}/auto-recharge`, {
              body: {
                bundleId,
                quantity: Number(count),
                monthlyLimit: most === '' ? null : Number(most),
                expected: { credits: selected.credits, price: { amount: selected.price.amount, currency: selected.price.currency } },
              },
            });
            setRecharge(set);
            setSaved('Auto-recharge saved.');
          } catch (failure) {
            if (failure instanceof ApiError && failure.code === 'purchase_terms_changed') {
              // Read again, not taken from the message: the form then shows the terms a Save agrees to.
              // Still busy meanwhile, so no second Save goes out at the terms refused.
              const refused = { bundleId, was: selected };
              setRefusal({ ...refused, unread: undefined });
              try {
                const now = await readBundles();
                setReread({ over: bundles, bundles: now });
                setRefusal({ ...refused, unread: null });
              } catch (unread) {
                setRefusal({ ...refused, unread: errorMessage(unread) });
              }
              return;
            }
            const found = fieldErrors(failure, (field) => field === 'bundleId' || field === 'quantity' || field === 'monthlyLimit');
            setErrors(found.fields);
            setError(found.general);
          }
        })}
      >
        <SelectField label="Bundle" value={bundleId} error={errors.bundleId} onChange={(event) => setBundleId(event.currentTarget.value)}>
          {offered?.length === 0 && <option value="">No bundles to buy</option>}
          {offered?.map((bundle) => (
            <option key={bundle.id} value={bundle.id}>
              {bundleText(bundle, audience)}
            </option>
          ))}
        </SelectField>
        <Field label="Quantity" inputMode="numeric" pattern="[0-9]*" value={quantity} error={errors.quantity} onInput={(event) => setQuantity(event.currentTarget.value)} />
        <Field
          label="Most a month"
          hint="Empty: no limit"
          inputMode="numeric"
          pattern="[0-9]*"
          value={monthlyLimit}
          error={errors.monthlyLimit}
          onInput={(event) => setMonthlyLimit(event.currentTarget.value)}
        />
        <button type="submit" disabled={busy || noLimit || selected === undefined}>
          Save auto-recharge
        </button>
        {recharge !== null && recharge !== undefined && (
          <button
            type="button"
            class="secondary"
            disabled={busy}
            onClick={busyWhile(async () => {
              setError(undefined);
              setSaved(undefined);
              setRefusal(undefined);
              try {
                await api.delete(path`/credit-balances/${balance.id}/auto-recharge`);
                setRecharge(null);
                setSaved('Auto-recharge turned off.');
              } catch (failure) {
                setError(errorMessage(failure));
              }
            })}
          >
            Turn auto-recharge off
          </button>
        )}
      </form>
      <ErrorMessage message={refusal?.bundleId === bundleId ? refusalText(refusal, offered, audience) : error} />
      {saved !== undefined && (
        <p class="ok" role="status">
          {saved}
        </p>
      )}
    </details>
  );
}
