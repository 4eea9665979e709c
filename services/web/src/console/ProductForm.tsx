import { useEffect, useState } from 'preact/hooks';
import { path, type ApiClient } from '../shared/apiClient';
import type { CreditProduct } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN } from '../shared/format';
import { ErrorMessage, Field, useBusyAction, useFormRefusal } from '../shared/ui';
import { ProductHistory } from './ProductHistory';
import { href, navigate, takeNote } from './router';

interface RuleDraft {
  event: string;
  credits: string;
  perUnitOf: string;
  /** `key=value` pairs separated by commas. */
  where: string;
}

interface BundleDraft {
  id: string;
  credits: string;
  amount: string;
  currency: string;
  purchaseOption: boolean;
}

interface Draft {
  id: string;
  name: string;
  description: string;
  lowBalanceThreshold: string;
  consumption: RuleDraft[];
  bundles: BundleDraft[];
}

const emptyRule = (): RuleDraft => ({ event: '', credits: '', perUnitOf: '', where: '' });
const emptyBundle = (): BundleDraft => ({ id: '', credits: '', amount: '', currency: 'EUR', purchaseOption: true });

function draftOf(product: CreditProduct): Draft {
  return {
    id: product.id,
    name: product.name,
    description: product.description,
    lowBalanceThreshold: product.lowBalanceThreshold ?? '',
    consumption: product.consumption.map((rule) => ({
      event: rule.event,
      credits: rule.credits,
      perUnitOf: rule.perUnitOf ?? '',
      where: Object.entries(rule.where ?? {})
        .map(([key, value]) => `${key}=${value}`)
        .join(', '),
    })),
    bundles: product.bundles.map((bundle) => ({
      id: bundle.id,
      credits: bundle.credits,
      amount: bundle.price.amount,
      currency: bundle.price.currency,
      purchaseOption: bundle.purchaseOption !== false,
    })),
  };
}

/** The product as the API takes it; the API validates it and says which field is wrong. */
function bodyOf(draft: Draft, creating: boolean) {
  return {
    ...(creating && draft.id !== '' ? { id: draft.id } : {}),
    name: draft.name,
    description: draft.description,
    lowBalanceThreshold: draft.lowBalanceThreshold === '' ? null : draft.lowBalanceThreshold,
    consumption: draft.consumption.map((rule) => {
      const where = Object.fromEntries(
        rule.where
          .split(',')
          .map((pair) => pair.trim())
          .filter(Boolean)
          .map((pair) => {
            const at = pair.indexOf('=');
            return at === -1 ? [pair, ''] : [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
          }),
      );
      return {
        event: rule.event,
        credits: rule.credits,
        ...(rule.perUnitOf !== '' ? { perUnitOf: rule.perUnitOf } : {}),
        ...(Object.keys(where).length > 0 ? { where } : {}),
      };
    }),
    bundles: draft.bundles.map((bundle) => ({
      id: bundle.id,
      credits: bundle.credits,
      price: { amount: bundle.amount, currency: bundle.currency },
      purchaseOption: bundle.purchaseOption,
    })),
  };
}

const FIELDS = /^(id|name|description|lowBalanceThreshold|consumption\.\d+\.(event|credits|perUnitOf|where)|bundles\.\d+\.(id|credits|price\.amount|price\.currency|purchaseOption))$/;

/** Create a credit product, or edit one (its id stays). */
export function ProductForm({ api, productId }: { api: ApiClient; productId: string | null }) {
  const creating = productId === null;
  const [draft, setDraft] = useState<Draft>({ id: '', name: '', description: '', lowBalanceThreshold: '', consumption: [emptyRule()], bundles: [] });
  const refusal = useFormRefusal((field) => FIELDS.test(field));
  // A product just created opens in a new form (the console keys the form by product id): the
  // navigation from the creating form says so, once.
  const [saved, setSaved] = useState(() => productId !== null && takeNote()?.created === productId);
  // Each save is a new version: the history is read again.
  const [savedCount, setSavedCount] = useState(0);
  const [busy, busyWhile] = useBusyAction();
  useEffect(() => {
    if (productId !== null) api.get<CreditProduct>(path`/credit-products/${productId}`).then((product) => setDraft(draftOf(product)), (failure: Error) => refusal.setGeneral(failure.message));
  }, [api, productId]);

  const update = (change: Partial<Draft>) => {
    setDraft({ ...draft, ...change });
    setSaved(false);
  };
  const updateRule = (index: number, change: Partial<RuleDraft>) => update({ consumption: draft.consumption.map((rule, at) => (at === index ? { ...rule, ...change } : rule)) });
  const updateBundle = (index: number, change: Partial<BundleDraft>) => update({ bundles: draft.bundles.map((bundle, at) => (at === index ? { ...bundle, ...change } : bundle)) });

  return (
    <section>
      <p>
        <a href={href({ screen: 'catalog' })}>← Catalog</a>
      </p>
      <h1>{creating ? 'New credit product' : `Edit ${draft.name || productId}`}</h1>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          try {
            const body = bodyOf(draft, creating);
            const product = creating
              ? await api.post<CreditProduct>('/credit-products', { body })
              : await api.patch<CreditProduct>(path`/credit-products/${productId!}`, { body });
            setDraft(draftOf(product));
            setSaved(true);
            setSavedCount((count) => count + 1);
            if (creating) navigate({ screen: 'product', productId: product.id }, { created: product.id });
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <div class="grid">
          {creating && (
            <Field label="Product id" value={draft.id} error={refusal.errors.id} hint="Optional: letters, digits, _ . : -" onInput={(event) => update({ id: event.currentTarget.value })} />
          )}
          <Field label="Name" required value={draft.name} error={refusal.errors.name} onInput={(event) => update({ name: event.currentTarget.value })} />
          <Field label="Description" value={draft.description} error={refusal.errors.description} onInput={(event) => update({ description: event.currentTarget.value })} />
          <Field
            label="Warning limit"
            inputMode="decimal"
            pattern={CREDITS_INPUT_PATTERN}
            value={draft.lowBalanceThreshold}
            error={refusal.errors.lowBalanceThreshold}
            hint="Low-balance warning below this many credits; empty for none."
            onInput={(event) => update({ lowBalanceThreshold: event.currentTarget.value })}
          />
        </div>

        <fieldset>
          <legend>Consumption rules</legend>
          {draft.consumption.map((rule, index) => (
            <fieldset class="row" key={index}>
              <legend>Rule {index + 1}</legend>
              <Field label="Event name" value={rule.event} error={refusal.errors[`consumption.${index}.event`]} onInput={(event) => updateRule(index, { event: event.currentTarget.value })} />
              <Field
                label="Credits"
                inputMode="decimal"
                value={rule.credits}
                error={refusal.errors[`consumption.${index}.credits`]}
                onInput={(event) => updateRule(index, { credits: event.currentTarget.value })}
              />
              <Field
                label="Per unit of property"
                value={rule.perUnitOf}
                hint="Empty: per event."
                error={refusal.errors[`consumption.${index}.perUnitOf`]}
                onInput={(event) => updateRule(index, { perUnitOf: event.currentTarget.value })}
              />
              <Field
                label="Property filters"
                value={rule.where}
                hint="e.g. model=large, region=eu"
                error={refusal.errors[`consumption.${index}.where`]}
                onInput={(event) => updateRule(index, { where: event.currentTarget.value })}
              />
              <button type="button" class="secondary" onClick={() => update({ consumption: draft.consumption.filter((_, at) => at !== index) })}>
                Remove rule {index + 1}
              </button>
            </fieldset>
          ))}
          <button type="button" class="secondary" onClick={() => update({ consumption: [...draft.consumption, emptyRule()] })}>
            Add consumption rule
          </button>
        </fieldset>

        <fieldset>
          <legend>Bundles</legend>
          {draft.bundles.map((bundle, index) => (
            <fieldset class="row" key={index}>
              <legend>Bundle {index + 1}</legend>
              <Field label="Bundle id" value={bundle.id} error={refusal.errors[`bundles.${index}.id`]} onInput={(event) => updateBundle(index, { id: event.currentTarget.value })} />
              <Field
                label="Bundle credits"
                inputMode="decimal"
                value={bundle.credits}
                error={refusal.errors[`bundles.${index}.credits`]}
                onInput={(event) => updateBundle(index, { credits: event.currentTarget.value })}
              />
              <Field
                label="Price"
                inputMode="decimal"
                value={bundle.amount}
                error={refusal.errors[`bundles.${index}.price.amount`]}
                onInput={(event) => updateBundle(index, { amount: event.currentTarget.value })}
              />
              <Field
                label="Currency"
                value={bundle.currency}
                maxLength={3}
                error={refusal.errors[`bundles.${index}.price.currency`]}
                onInput={(event) => updateBundle(index, { currency: event.currentTarget.value })}
              />
              <div class="field checkbox">
                <label>
                  <input type="checkbox" checked={bundle.purchaseOption} onChange={(event) => updateBundle(index, { purchaseOption: event.currentTarget.checked })} /> Shown
                  as a purchase option on the portal
                </label>
              </div>
              <button type="button" class="secondary" onClick={() => update({ bundles: draft.bundles.filter((_, at) => at !== index) })}>
                Remove bundle {index + 1}
              </button>
            </fieldset>
          ))}
          <button type="button" class="secondary" onClick={() => update({ bundles: [...draft.bundles, emptyBundle()] })}>
            Add bundle
          </button>
        </fieldset>

        <ErrorMessage message={refusal.general} />
        {saved && (
          <p class="ok" role="status">
            Saved.
          </p>
        )}
        <button type="submit" disabled={busy}>
          {creating ? 'Create credit product' : 'Save changes'}
        </button>
      </form>
      {productId !== null && <ProductHistory api={api} productId={productId} version={savedCount} />}
    </section>
  );
}
