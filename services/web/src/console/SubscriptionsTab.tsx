import { useState } from 'preact/hooks';
import { ApiError, everyItem, newIdempotencyKey, path, type ApiClient } from '../shared/apiClient';
import type { Plan, Subscription } from '../shared/apiTypes';
import { formatCredits, formatTime, keyLabel, periodText } from '../shared/format';
import { ErrorMessage, Loading, SelectField, useBusyAction, useFormRefusal, useRead } from '../shared/ui';
import { CancelSubscriptionDialog, ChangeTermsDialog, OverrideFields, overridesOf, type OverrideDrafts } from './SubscriptionDialogs';

/**
 * A customer's subscriptions, their grants so far and their terms by period; changing a
 * subscription's terms or canceling it; subscribing to a plan with per-subscription overrides.
 */
export function SubscriptionsTab({ api, customerId }: { api: ApiClient; customerId: string }) {
  // Undefined until first read: nothing is said of them ("No subscriptions.") before they are known.
  const [subscriptions, setSubscriptions] = useState<Subscription[]>();
  const [plans, setPlans] = useState<Plan[]>([]);
  const [planId, setPlanId] = useState('');
  const [overrides, setOverrides] = useState<OverrideDrafts>({});
  const [changing, setChanging] = useState<Subscription>();
  const [canceling, setCanceling] = useState<Subscription>();
  const refusal = useFormRefusal((field) => field === 'planId');
  const [version, setVersion] = useState(0);
  // The id of the subscription Subscribe means to make, sent with every attempt until one is
  // known to have landed: a retry after a lost answer, or a second click, makes it once.
  const [subscriptionId, setSubscriptionId] = useState(newIdempotencyKey);
  const [busy, busyWhile] = useBusyAction();
  // Read again after each change: a failure shows until a read succeeds.
  const readFailure = useRead(
    () =>
      Promise.all([
        everyItem<Subscription>(api, path`/customers/${customerId}/subscriptions`).then(setSubscriptions),
        everyItem<Plan>(api, '/plans').then((all) => {
          setPlans(all);
          const first = all.find((candidate) => candidate.retiredAt === null);
          if (planId === '' && first !== undefined) setPlanId(first.id);
        }),
      ]),
    [api, customerId, version],
  );
  const plan = plans.find((candidate) => candidate.id === planId);
  // Retired plans take no new subscriptions: only the others are offered to subscribe to.
  const offered = plans.filter((candidate) => candidate.retiredAt === null);
  return (
    <>
      <h2>Subscriptions</h2>
      <ErrorMessage message={readFailure} />
      <Loading read={subscriptions} failure={readFailure} />
      {/* None is said beside a failed read: the failure may be why none are known. */}
      {subscriptions?.length === 0 && readFailure === undefined && <p>No subscriptions.</p>}
      {subscriptions?.map((subscription) => (
        <section class="card" key={subscription.id} aria-label={`Subscription ${subscription.id}`}>
          <h3>
            {subscription.planName} <small>{subscription.status}</small>
          </h3>
          <p>
            Since {formatTime(subscription.startsAt)}
            {subscription.createdBy !== null && `, subscribed by ${keyLabel(subscription.createdBy)}`}
            {subscription.canceledAt !== null &&
              `. Canceled ${formatTime(subscription.canceledAt)}${subscription.canceledBy === null ? '' : ` by ${keyLabel(subscription.canceledBy)}`}.`}
          </p>
          <table>
            <caption>Grants</caption>
            <thead>
              <tr>
                <th scope="col">Credit product</th>
                <th scope="col">Credits</th>
                <th scope="col">Current period</th>
                <th scope="col">Granted through period</th>
              </tr>
            </thead>
            <tbody>
              {subscription.items.map((item) => (
                <tr key={item.productId}>
                  <td>{item.productId}</td>
                  <td class="number">
                    {formatCredits(item.creditsPerPeriod)} {periodText(item.period)}
                  </td>
                  <td>{item.currentPeriod === null ? 'not started' : `${item.currentPeriod.index + 1} (from ${formatTime(item.currentPeriod.start)})`}</td>
                  <td>{item.grantedThrough === null ? 'none yet' : item.grantedThrough + 1}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {subscription.overrides.length > 0 && (
            <table>
              <caption>Terms by period</caption>
              <thead>
                <tr>
                  <th scope="col">Credit product</th>
                  <th scope="col">From period</th>
                  <th scope="col">Credits per period</th>
                  <th scope="col">Warning limit</th>
                  <th scope="col">By</th>
                </tr>
              </thead>
              <tbody>
                {subscription.overrides.map((version) => (
                  <tr key={`${version.productId} ${version.effectiveFromPeriod}`}>
                    <td>{version.productId}</td>
                    <td>{version.effectiveFromPeriod + 1}</td>
                    <td class="number">{version.creditsPerPeriod === null ? "the plan's" : formatCredits(version.creditsPerPeriod)}</td>
                    <td class="number">{version.lowBalanceThreshold === null ? "the plan's" : formatCredits(version.lowBalanceThreshold)}</td>
                    <td>{version.changedBy === null ? '' : keyLabel(version.changedBy)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {subscription.status === 'active' && (
            <div class="actions">
              <button type="button" class="secondary" onClick={() => setChanging(subscription)}>
                Change terms
              </button>
              <button type="button" class="secondary" onClick={() => setCanceling(subscription)}>
                Cancel subscription
              </button>
            </div>
          )}
        </section>
      ))}
      <ChangeTermsDialog api={api} subscription={changing} onClose={() => setChanging(undefined)} onChanged={() => setVersion(version + 1)} />
      <CancelSubscriptionDialog api={api} subscription={canceling} onClose={() => setCanceling(undefined)} onCanceled={() => setVersion(version + 1)} />
      <h2>Subscribe to a plan</h2>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          const chosen = overridesOf(plan, overrides);
          try {
            await api.post<Subscription>('/subscriptions', { body: { id: subscriptionId, customerId, planId, ...(chosen.length > 0 ? { overrides: chosen } : {}) } });
          } catch (failure) {
            // Already made with this id: an earlier attempt landed though its answer was lost.
            if (!(failure instanceof ApiError && failure.code === 'subscription_already_exists')) {
              refusal.refused(failure);
              return;
            }
          }
          setOverrides({});
          setSubscriptionId(newIdempotencyKey());
          setVersion((current) => current + 1);
        })}
      >
        <SelectField label="Plan" value={planId} error={refusal.errors.planId} onChange={(event) => setPlanId(event.currentTarget.value)}>
          {offered.length === 0 && <option value="">No plans offered</option>}
          {offered.map((candidate) => (
            <option key={candidate.id} value={candidate.id}>
              {candidate.name}
            </option>
          ))}
        </SelectField>
        <OverrideFields plan={plan} drafts={overrides} onChange={setOverrides} />
        <ErrorMessage message={refusal.general} />
        <button type="submit" disabled={busy || planId === ''}>
          Subscribe
        </button>
      </form>
    </>
  );
}
