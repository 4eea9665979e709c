import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage, path, type ApiClient } from '../shared/apiClient';
import type { CreditOverride, Plan, Subscription } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN, formatCredits, formatTime, keyLabel, periodText } from '../shared/format';
import { rebaseEdits } from '../shared/rebaseEdits';
import { ConfirmDialog, Dialog, ErrorMessage, Field, useBusyAction, useFormRefusal, useId } from '../shared/ui';

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

/** The fields of a product's terms, as the dialog's messages name them. */
const TERMS_FIELDS = [
  { field: 'credits', words: 'credits per period' },
  { field: 'limit', words: 'warning limit' },
] as const;

/**
 * What the operator typed (`typed`, from the terms read first, `base`) on the terms as they are
 * now (`current`): a field the operator changed keeps the typing, a field left as read takes its
 * value now, so a second save undoes no change the operator did not make. `changed`: every field
 * whose stored value is no longer the one the operator started from, with its value now.
 */
export function rebaseDrafts(plan: Plan, base: OverrideDrafts, typed: OverrideDrafts, current: OverrideDrafts): { readonly drafts: OverrideDrafts; readonly changed: readonly string[] } {
  const rebased: Record<string, { credits: string; limit: string }> = {};
  const changed: string[] = [];
  const fields = TERMS_FIELDS.map(({ field }) => field);
  for (const { productId } of plan.items) {
    const termsIn = (drafts: OverrideDrafts) => ({ credits: drafts[productId]?.credits ?? '', limit: drafts[productId]?.limit ?? '' });
    const now = termsIn(current);
    const { values, theirs } = rebaseEdits(fields, termsIn(base), termsIn(typed), now);
    rebased[productId] = values;
    for (const { field, words } of TERMS_FIELDS.filter(({ field }) => theirs.includes(field))) changed.push(`${productId}: ${words} is now ${now[field] === '' ? "the plan's" : now[field]}`);
  }
  return { drafts: rebased, changed };
}

/** The plan of the subscription being changed: undefined while read, then the plan or why it could not be read. */
type PlanRead = { readonly plan: Plan } | { readonly failure: string } | undefined;

/**
 * Change terms: the complete overrides from each product's next period on (a product left empty
 * goes back to the plan's); the period in progress keeps the terms it started with. The
 * subscription's plan is read by id when the dialog opens (any plan, however many there are):
 * the fields are its products, and until it is read nothing can be saved, since overrides sent
 * without them would be none, and put every product back on the plan's terms. A save changes only
 * the version of the subscription read (If-Match): after a change made meanwhile (412) the
 * subscription as it is now becomes the version changed, the dialog keeps what the operator typed
 * (a field left as read takes its value now) and names each field changed with its value now; a
 * second Save sends the form against the new version. Nothing is undone unseen, nothing typed lost.
 * A cancel made meanwhile raises the version too: then the dialog says the subscription was
 * canceled (when, by whom) and offers no Save, since a canceled subscription's terms never change.
 */
export function ChangeTermsDialog({ api, subscription, onClose, onChanged }: { api: ApiClient; subscription: Subscription | undefined; onClose: () => void; onChanged: () => void }) {
  const [drafts, setDrafts] = useState<OverrideDrafts>({});
  // The subscription as last read: as opened, or as read again after a 412. Saves are sent against its version.
  const [read, setRead] = useState(subscription);
  // Set after a 412: someone else changed the terms after the version the form showed was read; what they changed.
  const [changedMeanwhile, setChangedMeanwhile] = useState<readonly string[]>();
  // Set after a 412 when the subscription as read again is canceled: the change meanwhile was a cancel, and nothing can be saved.
  const [canceledMeanwhile, setCanceledMeanwhile] = useState<Subscription>();
  const canceledId = useId('change-terms-canceled');
  const canceledRef = useRef<HTMLParagraphElement>(null);
  const [planRead, setPlanRead] = useState<PlanRead>();
  // Each Read the plan again reads it again.
  const [reads, setReads] = useState(0);
  // The overrides' fields are per product, the API's per position in what is sent: its refusal
  // is shown whole, for the form.
  const refusal = useFormRefusal(() => false);
  const [busy, busyWhile] = useBusyAction();
  const reasonId = useId('change-terms-reason');
  // After Read the plan again, which goes as it is clicked: the focus follows the read (its
  // message, then the first field), not dropped on the page's body where Tab never reaches Save's reason.
  const [rereading, setRereading] = useState(false);
  const statusRef = useRef<HTMLParagraphElement>(null);
  const formRef = useRef<HTMLFormElement>(null);
  useEffect(() => {
    setRead(subscription);
    setChangedMeanwhile(undefined);
    setCanceledMeanwhile(undefined);
    setRereading(false);
    if (subscription === undefined) return;
    setDrafts(latestDrafts(subscription));
    refusal.clear();
  }, [subscription]);
  const planId = subscription?.planId;
  useEffect(() => {
    setPlanRead(undefined);
    if (planId === undefined) return undefined;
    let current = true;
    api.get<Plan>(path`/plans/${planId}`).then(
      (plan) => {
        if (current) setPlanRead({ plan });
      },
      (failure: unknown) => {
        if (current) setPlanRead({ failure: errorMessage(failure) });
      },
    );
    return () => {
      current = false;
    };
  }, [api, planId, reads]);
  const plan = planRead !== undefined && 'plan' in planRead ? planRead.plan : undefined;
  useEffect(() => {
    if (!rereading) return;
    if (plan === undefined) {
      statusRef.current?.focus();
      return;
    }
    formRef.current?.querySelector<HTMLInputElement>('input')?.focus();
    setRereading(false);
  }, [rereading, planRead]);
  // Said where the focus goes: Save, which it disables, is where the operator was.
  useEffect(() => {
    if (canceledMeanwhile !== undefined) canceledRef.current?.focus();
  }, [canceledMeanwhile]);
  return (
    <Dialog title={`Change terms: ${subscription?.planName ?? ''}`} open={subscription !== undefined} onClose={onClose}>
      <form
        ref={formRef}
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          if (read === undefined || plan === undefined || canceledMeanwhile !== undefined) return;
          refusal.clear();
          setChangedMeanwhile(undefined);
          try {
            await api.patch<Subscription>(path`/subscriptions/${read.id}`, { body: { overrides: overridesOf(plan, drafts) }, ifMatch: `"${read.version}"` });
            onChanged();
            onClose();
          } catch (failure) {
            if (!(failure instanceof ApiError && failure.code === 'subscription_changed')) {
              refusal.refused(failure);
              return;
            }
            // Read again: the version the form changes from now on, with the operator's typing on it; the tab reads its list again.
            onChanged();
            try {
              const current = await api.get<Subscription>(path`/subscriptions/${read.id}`);
              if (current.status === 'canceled') {
                // Its terms no longer change: the form is left as typed, with nothing to save it to.
                setRead(current);
                setCanceledMeanwhile(current);
                return;
              }
              const rebased = rebaseDrafts(plan, latestDrafts(read), drafts, latestDrafts(current));
              setRead(current);
              setDrafts(rebased.drafts);
              setChangedMeanwhile(rebased.changed);
            } catch (unread) {
              refusal.setGeneral(`The subscription as it is now could not be read: ${errorMessage(unread)} Close and open Change terms again.`);
            }
          }
        })}
      >
        <p>From each product's next period on; the period in progress keeps the terms it started with.</p>
        {changedMeanwhile !== undefined && (
          <p class="error" role="alert">
            Not saved: someone else changed this subscription's terms after you opened it, and saving would have undone their change
            {changedMeanwhile.length > 0 ? `: ${changedMeanwhile.join('; ')}` : ''}. The form keeps what you typed; the fields you left show the terms as they are now. Save
            applies the form to the subscription as it is now.
          </p>
        )}
        {canceledMeanwhile !== undefined && (
          <p id={canceledId} ref={canceledRef} tabIndex={-1} class="error" role="alert">
            Not saved: this subscription was canceled
            {canceledMeanwhile.canceledAt !== null && ` ${formatTime(canceledMeanwhile.canceledAt)}`}
            {canceledMeanwhile.canceledBy !== null && ` by ${keyLabel(canceledMeanwhile.canceledBy)}`} after you opened it. A canceled subscription's terms cannot be
            changed: no period after the one in progress grants. Close to see it as it is now.
          </p>
        )}
        {planRead === undefined && (
          <p id={reasonId} ref={statusRef} tabIndex={-1} class="loading" role="status">
            Reading the plan's products: Save waits for them.
          </p>
        )}
        {planRead !== undefined && 'failure' in planRead && (
          <div class="notice">
            <p id={reasonId} ref={statusRef} tabIndex={-1} class="error" role="alert">
              The plan {planId} could not be read: {planRead.failure} Nothing can be saved until it is: without its products, saving would put every product back on the plan's terms.
            </p>
            <button
              type="button"
              class="secondary"
              onClick={() => {
                setRereading(true);
                setReads(reads + 1);
              }}
            >
              Read the plan again
            </button>
          </div>
        )}
        <OverrideFields
          plan={plan}
          drafts={drafts}
          onChange={setDrafts}
          // The granter sets a limit on the balance when it grants the period that changes it, and only then (see the API's PATCH /subscriptions/{id}).
          limitHint="Empty: the plan's. A changed limit is set on the balance when its next period is granted; the same limit saved again leaves one changed on the balance as it is."
        />
        <ErrorMessage message={refusal.general} />
        <div class="actions">
          <button
            type="submit"
            disabled={busy || plan === undefined || canceledMeanwhile !== undefined}
            aria-describedby={canceledMeanwhile !== undefined ? canceledId : plan === undefined ? reasonId : undefined}
          >
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
export function CancelSubscriptionDialog({ api, subscription, onClose, onCanceled }: { api: ApiClient; subscription: Subscription | undefined; onClose: () => void; onCanceled: () => void }) {
  return (
    <ConfirmDialog
      title={`Cancel subscription: ${subscription?.planName ?? ''}`}
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
