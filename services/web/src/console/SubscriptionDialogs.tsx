import { useEffect, useState } from 'preact/hooks';
import { path, type ApiClient } from '../shared/apiClient';
import type { CreditOverride, Plan, Subscription } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN, formatCredits, periodText } from '../shared/format';
import { ConfirmDialog, Dialog, ErrorMessage, Field, useBusyAction, useFormRefusal } from '../shared/ui';

/** Per plan product, the override being typed: empty strings take the plan's. */
export type OverrideDrafts = Readonly<Record<string, { readonly credits: string; readonly limit: string }>>;

/** The drafts as the API's overrides: only the plan's products, only those with something typed. */
export function overridesOf(plan: Plan | undefined, drafts: OverrideDrafts): CreditOverride[] {
  return Object.entries(drafts)
    .filter(([productId, value]) => plan?.items.some((item) => item.productId === productId) === true && (value.credits !== '' || value.limit !== ''))
    .map(([productId, value]) => ({
      productId,
      ...(value.credits !== '' ? { creditsPerPeriod: value.credits } : {}),
      ...(value.limit !== '' ? { lowBalanceThreshold: value.limit } : {}),
    }));
}

/**
 * One fieldset per plan product: credits per period and warning limit for this subscription;
 * `limitHint` says when the limit reaches the customer's balance.
 */
export function OverrideFields({
  plan,
  drafts,
  onChange,
  limitHint = "Empty: the plan's.",
}: {
  plan: Plan | undefined;
  drafts: OverrideDrafts;
  onChange: (drafts: OverrideDrafts) => void;
  limitHint?: string;
}) {
  const change = (productId: string, part: Partial<{ credits: string; limit: string }>) =>
    onChange({ ...drafts, [productId]: { credits: drafts[productId]?.credits ?? '', limit: drafts[productId]?.limit ?? '', ...part } });
  return (
    <>
      {plan?.items.map((item) => (
        <fieldset class="row" key={item.productId}>
          <legend>
            {item.productId}: {formatCredits(item.creditsPerPeriod)} {periodText(item.period)}
          </legend>
          <Field
            label="Credits per period for this subscription"
            inputMode="decimal"
            pattern={CREDITS_INPUT_PATTERN}
            value={drafts[item.productId]?.credits ?? ''}
            hint="Empty: the plan's."
            onInput={(event) => change(item.productId, { credits: event.currentTarget.value })}
          />
          <Field
            label="Warning limit for this subscription"
            inputMode="decimal"
            pattern={CREDITS_INPUT_PATTERN}
            value={drafts[item.productId]?.limit ?? ''}
            hint={limitHint}
            onInput={(event) => change(item.productId, { limit: event.currentTarget.value })}
          />
        </fieldset>
      ))}
    </>
  );
}

/** The terms in force from the next period on: each product's latest override version. */
function latestDrafts(subscription: Subscription): OverrideDrafts {
  const drafts: Record<string, { credits: string; limit: string }> = {};
  // Versions come oldest period first: a later one replaces an earlier one of its product.
  for (const version of subscription.overrides) {
    drafts[version.productId] = { credits: version.creditsPerPeriod ?? '', limit: version.lowBalanceThreshold ?? '' };
  }
  return drafts;
}

/**
 * Change terms: the complete overrides from each product's next period on (a product left empty
 * goes back to the plan's); the period in progress keeps the terms it started with.
 */
export function ChangeTermsDialog({ api, subscription, plan, onClose, onChanged }: { api: ApiClient; subscription: Subscription | undefined; plan: Plan | undefined; onClose: () => void; onChanged: () => void }) {
  const [drafts, setDrafts] = useState<OverrideDrafts>({});
  // The overrides' fields are per product, the API's per position in what is sent: its refusal
  // is shown whole, for the form.
  const refusal = useFormRefusal(() => false);
  const [busy, busyWhile] = useBusyAction();
  useEffect(() => {
    if (subscription === undefined) return;
    setDrafts(latestDrafts(subscription));
    refusal.clear();
  }, [subscription]);
  return (
    <Dialog title={`Change terms: ${plan?.name ?? subscription?.planId ?? ''}`} open={subscription !== undefined} onClose={onClose}>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          if (subscription === undefined) return;
          refusal.clear();
          try {
            await api.patch<Subscription>(path`/subscriptions/${subscription.id}`, { body: { overrides: overridesOf(plan, drafts) } });
            onChanged();
            onClose();
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <p>From each product's next period on; the period in progress keeps the terms it started with.</p>
        <OverrideFields
          plan={plan}
          drafts={drafts}
          onChange={setDrafts}
          // The granter sets a limit on the balance when it grants the period that changes it, and only then (see the API's PATCH /subscriptions/{id}).
          limitHint="Empty: the plan's. A changed limit is set on the balance when its next period is granted; the same limit saved again leaves one changed on the balance as it is."
        />
        <ErrorMessage message={refusal.general} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save terms
          </button>
          <button type="button" class="secondary" onClick={onClose}>
            Close
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Cancel a subscription: the period in progress keeps its grant, no later period grants. */
export function CancelSubscriptionDialog({ api, subscription, plan, onClose, onCanceled }: { api: ApiClient; subscription: Subscription | undefined; plan: Plan | undefined; onClose: () => void; onCanceled: () => void }) {
  return (
    <ConfirmDialog
      title={`Cancel subscription: ${plan?.name ?? subscription?.planId ?? ''}`}
      open={subscription !== undefined}
      confirmLabel="Cancel subscription"
      keepLabel="Keep subscription"
      onClose={onClose}
      onConfirm={async () => {
        if (subscription === undefined) return;
        await api.post<Subscription>(path`/subscriptions/${subscription.id}/cancel`, {});
        onCanceled();
      }}
    >
      <p>The period in progress keeps its grant; no period after it grants. This cannot be undone.</p>
    </ConfirmDialog>
  );
}
