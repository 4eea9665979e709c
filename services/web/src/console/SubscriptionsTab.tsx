import { useEffect, useState } from 'preact/hooks';
import { fieldErrors, path, type ApiClient } from '../shared/apiClient';
import type { CreditOverride, Page, Plan, Subscription } from '../shared/apiTypes';
import { formatTime, keyLabel } from '../shared/format';
import { ErrorMessage, Field, SelectField } from '../shared/ui';
import { periodText } from './PlansPage';

/** A customer's subscriptions, their grants so far, and subscribing to a plan with per-subscription overrides. */
export function SubscriptionsTab({ api, customerId }: { api: ApiClient; customerId: string }) {
  const [subscriptions, setSubscriptions] = useState<Subscription[]>([]);
  const [plans, setPlans] = useState<Plan[]>([]);
  const [planId, setPlanId] = useState('');
  const [overrides, setOverrides] = useState<Record<string, { credits: string; limit: string }>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string>();
  const [version, setVersion] = useState(0);
  useEffect(() => {
    api.get<Page<Subscription>>(path`/customers/${customerId}/subscriptions`, { query: { limit: '500' } }).then((page) => setSubscriptions(page.items), (failure: Error) => setGeneral(failure.message));
    api.get<Page<Plan>>('/plans', { query: { limit: '500' } }).then((page) => {
      setPlans(page.items);
      if (planId === '' && page.items[0] !== undefined) setPlanId(page.items[0].id);
    }, () => undefined);
  }, [api, customerId, version]);
  const plan = plans.find((candidate) => candidate.id === planId);
  return (
    <>
      <h2>Subscriptions</h2>
      {subscriptions.length === 0 && <p>No subscriptions.</p>}
      {subscriptions.map((subscription) => (
        <section class="card" key={subscription.id} aria-label={`Subscription ${subscription.id}`}>
          <h3>
            {plans.find((candidate) => candidate.id === subscription.planId)?.name ?? subscription.planId} <small>{subscription.status}</small>
          </h3>
          <p>
            Since {formatTime(subscription.startsAt)}
            {subscription.createdBy !== null && `, subscribed by ${keyLabel(subscription.createdBy)}`}
            {subscription.canceledAt !== null &&
              `. Canceled ${formatTime(subscription.canceledAt)}${subscription.canceledBy === null ? '' : ` by ${keyLabel(subscription.canceledBy)}`}`}
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
                    {item.creditsPerPeriod} {periodText(item.period)}
                  </td>
                  <td>{item.currentPeriod === null ? 'not started' : `${item.currentPeriod.index + 1} (from ${formatTime(item.currentPeriod.start)})`}</td>
                  <td>{item.grantedThrough === null ? 'none yet' : item.grantedThrough + 1}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
      <h2>Subscribe to a plan</h2>
      <form
        noValidate
        onSubmit={async (event) => {
          event.preventDefault();
          setErrors({});
          setGeneral(undefined);
          const chosen: CreditOverride[] = Object.entries(overrides)
            .filter(([productId, value]) => plan?.items.some((item) => item.productId === productId) === true && (value.credits !== '' || value.limit !== ''))
            .map(([productId, value]) => ({
              productId,
              ...(value.credits !== '' ? { creditsPerPeriod: value.credits } : {}),
              ...(value.limit !== '' ? { lowBalanceThreshold: value.limit } : {}),
            }));
          try {
            await api.post<Subscription>('/subscriptions', { body: { customerId, planId, ...(chosen.length > 0 ? { overrides: chosen } : {}) } });
            setOverrides({});
            setVersion(version + 1);
          } catch (failure) {
            const found = fieldErrors(failure, (field) => field === 'planId');
            setErrors(found.fields);
            setGeneral(found.general);
          }
        }}
      >
        <SelectField label="Plan" value={planId} error={errors.planId} onChange={(event) => setPlanId(event.currentTarget.value)}>
          {plans.length === 0 && <option value="">No plans yet</option>}
          {plans.map((candidate) => (
            <option key={candidate.id} value={candidate.id}>
              {candidate.name}
            </option>
          ))}
        </SelectField>
        {plan?.items.map((item) => (
          <fieldset class="row" key={item.productId}>
            <legend>
              {item.productId}: {item.creditsPerPeriod} {periodText(item.period)}
            </legend>
            <Field
              label="Credits per period for this subscription"
              inputMode="decimal"
              value={overrides[item.productId]?.credits ?? ''}
              hint="Empty: the plan's."
              onInput={(event) => setOverrides({ ...overrides, [item.productId]: { limit: overrides[item.productId]?.limit ?? '', credits: event.currentTarget.value } })}
            />
            <Field
              label="Warning limit for this subscription"
              inputMode="decimal"
              value={overrides[item.productId]?.limit ?? ''}
              hint="Empty: the plan's."
              onInput={(event) => setOverrides({ ...overrides, [item.productId]: { credits: overrides[item.productId]?.credits ?? '', limit: event.currentTarget.value } })}
            />
          </fieldset>
        ))}
        <ErrorMessage message={general} />
        <button type="submit" disabled={planId === ''}>
          Subscribe
        </button>
      </form>
    </>
  );
}
