import type { TargetedEvent } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage, path, type ApiClient } from '../shared/apiClient';
import type { CreditProduct } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN } from '../shared/format';
import { CheckboxField, ErrorMessage, Field, screenHeading, useBusyAction, useFormRefusal, useId } from '../shared/ui';
import { ProductHistory } from './ProductHistory';
import { bodyOf, draftOf, draftProblems, emptyBundle, emptyDraft, emptyFilter, emptyRule, filterField, type BundleDraft, type Draft, type FilterDraft, type RuleDraft } from './productDraft';
import { href, navigate, takeNote } from './router';

/** The fields the API may name that the form shows; a rule's filters by the rule (`where`) or by a property of it (`where.region`). */
const FIELDS = /^(id|name|description|lowBalanceThreshold|consumption\.\d+\.(event|credits|perUnitOf|where(\..+)?)|bundles\.\d+\.(id|credits|price\.amount|price\.currency|purchaseOption))$/;

/** The API's refusals of rule `index`'s filters: of them all, or of one property (named first). */
function whereErrors(errors: Record<string, string>, index: number): string[] {
  const prefix = `consumption.${index}.where`;
  return Object.entries(errors)
    .filter(([field]) => field === prefix || field.startsWith(`${prefix}.`))
    .map(([field, message]) => (field === prefix ? message : `"${field.slice(prefix.length + 1)}" ${message}`));
}

/** Focuses the button of class `selector` in the same `container` as the control clicked: what a removed row's button hands focus to. */
const focusNear = (event: TargetedEvent<HTMLButtonElement, Event>, container: string, selector: string) =>
  event.currentTarget.closest(container)?.querySelector<HTMLButtonElement>(selector)?.focus();

/**
 * A rule's property filters, one row each (property, value): the usage event's property must
 * equal the value exactly, so nothing typed is split or trimmed.
 */
function FilterRows({
  rule,
  index,
  errors,
  problems,
  onChange,
}: {
  rule: RuleDraft;
  index: number;
  errors: string[];
  problems: Record<string, string>;
  onChange: (where: FilterDraft[]) => void;
}) {
  const id = useId('filters');
  const described = [`${id}-hint`, ...errors.map((_, at) => `${id}-error-${at}`)].join(' ');
  const updateFilter = (at: number, change: Partial<FilterDraft>) => onChange(rule.where.map((filter, position) => (position === at ? { ...filter, ...change } : filter)));
  return (
    <fieldset class="filters" aria-describedby={described}>
      <legend>Property filters</legend>
      <small id={`${id}-hint`} class="hint">
        {rule.where.length === 0
          ? 'None: the rule prices every event of its name.'
          : "The rule prices only events whose every property named here equals its value, character for character (spaces and commas included)."}
      </small>
      {rule.where.map((filter, at) => (
        <fieldset class="row filter" key={at}>
          <legend>Filter {at + 1}</legend>
          <Field label="Property" value={filter.key} error={problems[filterField(index, at)]} onInput={(event) => updateFilter(at, { key: event.currentTarget.value })} />
          <Field label="Value" value={filter.value} onInput={(event) => updateFilter(at, { value: event.currentTarget.value })} />
          <button
            type="button"
            class="secondary"
            onClick={(event) => {
              onChange(rule.where.filter((_, position) => position !== at));
              focusNear(event, 'fieldset.filters', '.add-filter');
            }}
          >
            Remove filter {at + 1}
          </button>
        </fieldset>
      ))}
      {errors.map((error, at) => (
        <small key={at} id={`${id}-error-${at}`} class="error" role="alert">
          {error}
        </small>
      ))}
      <div>
        <button type="button" class="secondary add-filter" onClick={() => onChange([...rule.where, emptyFilter()])}>
          Add filter
        </button>
      </div>
    </fieldset>
  );
}

/**
 * Create a credit product, or edit one (its id stays). A change is sent against the version the
 * form read (If-Match): one made meanwhile by someone else is never overwritten, the form says so
 * and offers to read the product again.
 */
export function ProductForm({ api, productId }: { api: ApiClient; productId: string | null }) {
  const creating = productId === null;
  const [draft, setDraft] = useState<Draft>(emptyDraft);
  // The version the draft was read from, once read (editing); the save changes only that one.
  const [revision, setRevision] = useState<number>();
  const [readFailure, setReadFailure] = useState<{ readonly message: string; readonly invalid: boolean }>();
  // Each Read again, or Reload product after a change made elsewhere, reads the product again.
  const [reads, setReads] = useState(0);
  const [changedElsewhere, setChangedElsewhere] = useState(false);
  const focusAfterRead = useRef(false);
  const refusal = useFormRefusal((field) => FIELDS.test(field));
  // What the form refuses to send (draftProblems), by row: shown as a refusal is, until sent again.
  const [problems, setProblems] = useState<Record<string, string>>({});
  // A product just created opens in a new form (the console keys the form by product id): the
  // navigation from the creating form says so, once.
  const [saved, setSaved] = useState(() => productId !== null && takeNote()?.created === productId);
  // Each save is a new version: the history is read again.
  const [savedCount, setSavedCount] = useState(0);
  const [busy, busyWhile] = useBusyAction();
  const addRuleButton = useRef<HTMLButtonElement>(null);
  const addBundleButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (productId === null) return undefined;
    let current = true;
    setReadFailure(undefined);
    api.get<CreditProduct>(path`/credit-products/${productId}`).then(
      (product) => {
        if (!current) return;
        setDraft(draftOf(product));
        setRevision(product.revision);
        setChangedElsewhere(false);
        refusal.clear();
        setProblems({});
        if (focusAfterRead.current) screenHeading()?.focus();
        focusAfterRead.current = false;
      },
      (failure: unknown) => {
        if (!current) return;
        setReadFailure({ message: errorMessage(failure), invalid: failure instanceof ApiError && failure.code === 'stored_product_invalid' });
        focusAfterRead.current = false;
      },
    );
    return () => {
      current = false;
    };
  }, [api, productId, reads]);

  const update = (change: Partial<Draft>) => {
    setDraft({ ...draft, ...change });
    setSaved(false);
  };
  const updateRule = (index: number, change: Partial<RuleDraft>) => update({ consumption: draft.consumption.map((rule, at) => (at === index ? { ...rule, ...change } : rule)) });
  const updateBundle = (index: number, change: Partial<BundleDraft>) => update({ bundles: draft.bundles.map((bundle, at) => (at === index ? { ...bundle, ...change } : bundle)) });
  const readAgain = () => {
    focusAfterRead.current = true;
    setReads((count) => count + 1);
  };

  return (
    <section>
      <p>
        <a href={href({ screen: 'catalog' })}>← Catalog</a>
      </p>
      <h1>{creating ? 'New credit product' : `Edit ${draft.name || productId}`}</h1>
      {readFailure !== undefined && (
        <div class="notice">
          {readFailure.invalid ? (
            <p class="error" role="alert">
              This product cannot be edited here: {readFailure.message}. Until that field is changed through the API (<code>PATCH /v1/credit-products/{productId}</code>), the
              usage it prices is dead-lettered as <code>stored_product_invalid</code>.
            </p>
          ) : (
            <ErrorMessage message={`The product could not be read: ${readFailure.message}`} />
          )}
          <div>
            <button type="button" class="secondary" onClick={readAgain}>
              Read again
            </button>
          </div>
        </div>
      )}
      {!creating && revision === undefined && readFailure === undefined && <p class="loading">Loading the product…</p>}
      {(creating || revision !== undefined) && (
        <form
          noValidate
          onSubmit={busyWhile(async (event) => {
            event.preventDefault();
            refusal.clear();
            setChangedElsewhere(false);
            const found = draftProblems(draft);
            setProblems(found);
            if (Object.keys(found).length > 0) return;
            try {
              const body = bodyOf(draft, creating);
              const product = creating
                ? await api.post<CreditProduct>('/credit-products', { body })
                : await api.patch<CreditProduct>(path`/credit-products/${productId!}`, { body, ifMatch: `"${revision!}"` });
              setDraft(draftOf(product));
              setRevision(product.revision);
              setSaved(true);
              setSavedCount((count) => count + 1);
              if (creating) navigate({ screen: 'product', productId: product.id }, { created: product.id });
            } catch (failure) {
              if (failure instanceof ApiError && failure.code === 'product_changed') setChangedElsewhere(true);
              else refusal.refused(failure);
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
                <FilterRows
                  rule={rule}
                  index={index}
                  errors={whereErrors(refusal.errors, index)}
                  problems={problems}
                  onChange={(where) => {
                    // A removed row moves the rows after it up: what was said of a row by its place goes.
                    if (where.length < rule.where.length) setProblems({});
                    updateRule(index, { where });
                  }}
                />
                <button
                  type="button"
                  class="secondary"
                  onClick={() => {
                    setProblems({});
                    update({ consumption: draft.consumption.filter((_, at) => at !== index) });
                    addRuleButton.current?.focus();
                  }}
                >
                  Remove rule {index + 1}
                </button>
              </fieldset>
            ))}
            <button type="button" class="secondary" ref={addRuleButton} onClick={() => update({ consumption: [...draft.consumption, emptyRule()] })}>
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
                <CheckboxField
                  label="Shown as a purchase option on the portal"
                  checked={bundle.purchaseOption}
                  error={refusal.errors[`bundles.${index}.purchaseOption`]}
                  onChange={(event) => updateBundle(index, { purchaseOption: event.currentTarget.checked })}
                />
                <button
                  type="button"
                  class="secondary"
                  onClick={() => {
                    update({ bundles: draft.bundles.filter((_, at) => at !== index) });
                    addBundleButton.current?.focus();
                  }}
                >
                  Remove bundle {index + 1}
                </button>
              </fieldset>
            ))}
            <button type="button" class="secondary" ref={addBundleButton} onClick={() => update({ bundles: [...draft.bundles, emptyBundle()] })}>
              Add bundle
            </button>
          </fieldset>

          <ErrorMessage message={refusal.general} />
          {changedElsewhere && (
            <div class="notice">
              <p class="error" role="alert">
                Not saved: someone else changed this product after you opened it, and saving would undo their change. Reload the product to see it as it is now
                (what you changed here is discarded), then make your change again.
              </p>
              <div>
                <button type="button" class="secondary" onClick={readAgain}>
                  Reload product
                </button>
              </div>
            </div>
          )}
          {saved && (
            <p class="ok" role="status">
              Saved.
            </p>
          )}
          <button type="submit" disabled={busy}>
            {creating ? 'Create credit product' : 'Save changes'}
          </button>
        </form>
      )}
      {productId !== null && revision !== undefined && <ProductHistory api={api} productId={productId} version={savedCount + reads} />}
    </section>
  );
}
