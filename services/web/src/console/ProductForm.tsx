import type { TargetedEvent } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage, fieldErrors, path, type ApiClient } from '../shared/apiClient';
import type { CreditProduct } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN } from '../shared/format';
import { CheckboxField, ErrorMessage, Field, screenHeading, useBusyAction, useFormRefusal, useId } from '../shared/ui';
import { invalidProductOf } from './invalidProduct';
import { ProductHistory } from './ProductHistory';
import {
  bodyOf,
  changeOf,
  compareDrafts,
  draftOf,
  draftProblems,
  emptyBundle,
  emptyDraft,
  emptyFilter,
  emptyRule,
  filterField,
  rebaseDraft,
  ruleField,
  type BundleDraft,
  type Draft,
  type FilterDraft,
  type ProductField,
  type RuleDraft,
} from './productDraft';
import { bundlesWithPricesSummary, rulesSummary, warningLimitSummary } from './productSummary';
import { href, navigate, takeNote } from './router';

/** The fields the API may name that the form shows; a rule's filters by the rule (`where`) or by a property of it (`where.region`). */
const FIELDS = /^(id|name|description|lowBalanceThreshold|consumption\.\d+\.(event|credits|perUnitOf|where(\..+)?)|bundles\.\d+\.(id|credits|price\.amount|price\.currency|purchaseOption))$/;

/** Each product field by the label the form shows it under. */
const FIELD_LABELS: Readonly<Record<ProductField, string>> = {
  name: 'Name',
  description: 'Description',
  lowBalanceThreshold: 'Warning limit',
  consumption: 'Consumption rules',
  bundles: 'Bundles',
};

const fieldList = (fields: readonly ProductField[]) => fields.map((field) => FIELD_LABELS[field]).join(', ');

/** A field of a draft in words, as the catalog shows a product's: what each side set, side by side. */
function fieldSummary(draft: Draft, field: ProductField): string {
  const product: CreditProduct = { ...bodyOf(draft, false), id: draft.id, revision: 0 };
  switch (field) {
    case 'name':
    case 'description':
      return draft[field] === '' ? 'empty' : JSON.stringify(draft[field]);
    case 'lowBalanceThreshold':
      return warningLimitSummary(product);
    case 'consumption':
      return rulesSummary(product) || 'none';
    case 'bundles':
      return bundlesWithPricesSummary(product) || 'none';
  }
}

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
 * form read (If-Match): one made meanwhile by someone else is never overwritten. The form then
 * keeps what was typed, reads the product as it is now, names the fields both changed, and offers
 * to apply the operator's changes to that version (to review, then save) or to discard them. A
 * save sends the rules and the bundles only when they differ from the version read (changeOf), so
 * a product stored before a refusal of its rules or bundles takes a change of its other fields. A
 * stored product that fails validation opens seeded as stored (the API's 409 carries it), with why
 * beside its field, and a save (every field the form shows differently from the document) repairs it.
 */
export function ProductForm({ api, productId }: { api: ApiClient; productId: string | null }) {
  const creating = productId === null;
  const [draft, setDraft] = useState<Draft>(emptyDraft);
  // The version the draft was read from, once read (editing); the save changes only that one.
  const [revision, setRevision] = useState<number>();
  // The draft as that version had it: what the operator changed is told from it after a 412.
  const [base, setBase] = useState<Draft>();
  // That version as the API answered it (as stored, when it fails validation): what a save's rules and bundles are compared with.
  const [stored, setStored] = useState<unknown>();
  const [readFailure, setReadFailure] = useState<{ readonly message: string; readonly invalid: boolean }>();
  // Each Read again reads the product again.
  const [reads, setReads] = useState(0);
  // A save refused for a change made meanwhile (412): the product as it is now, or why it could not be read.
  const [changedElsewhere, setChangedElsewhere] = useState<{ readonly current: CreditProduct } | { readonly failure: string }>();
  // The operator's changes applied to the current version, to review: its revision, and what the other change had set where both changed a field.
  const [rebased, setRebased] = useState<{ readonly revision: number; readonly replaced: ReadonlyArray<{ readonly field: ProductField; readonly theirs: string }> }>();
  const rebasedNotice = useRef<HTMLParagraphElement>(null);
  // A stored product that fails validation, opened to repair (seeded as stored): why it fails.
  const [repair, setRepair] = useState<{ readonly reason: string }>();
  const [repairErrors, setRepairErrors] = useState<Record<string, string>>({});
  const focusAfterRead = useRef(false);
  const refusal = useFormRefusal((field) => FIELDS.test(field));
  // Why the stored product fails, by field, until the API answers a save; the API's refusals over it.
  const errors = { ...repairErrors, ...refusal.errors };
  // What the form refuses to send (draftProblems), by row: shown as a refusal is, until sent again.
  const [problems, setProblems] = useState<Record<string, string>>({});
  // A product just created opens in a new form (the console keys the form by product id): the
  // navigation from the creating form says so, once.
  const [saved, setSaved] = useState(() => productId !== null && takeNote()?.created === productId);
  // Each save, or a version read after a 412, is a new version: the history is read again.
  const [savedCount, setSavedCount] = useState(0);
  const [busy, busyWhile] = useBusyAction();
  const addRuleButton = useRef<HTMLButtonElement>(null);
  const addBundleButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (productId === null) return undefined;
    let current = true;
    setReadFailure(undefined);
    const opened = () => {
      clearNotices();
      if (focusAfterRead.current) screenHeading()?.focus();
      focusAfterRead.current = false;
    };
    api.get<CreditProduct>(path`/credit-products/${productId}`).then(
      (product) => {
        if (!current) return;
        openVersion(product, product.revision);
        opened();
      },
      (failure: unknown) => {
        if (!current) return;
        // The 409 of a stored product that fails validation carries it as stored: the form is seeded
        // with exactly what credit_products holds, and why it fails goes beside its field.
        const found = invalidProductOf(failure);
        if (found !== undefined) {
          openVersion(found.stored, found.revision, { reason: found.reason });
          opened();
          return;
        }
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
  /**
   * The form on a version as read, saved, or stored failing validation (`repairOf`: why it fails):
   * the version a save changes (If-Match), and what changes are told from. Every path that opens a
   * version comes here, so that none keeps another version's repair state.
   */
  function openVersion(document: unknown, openedRevision: number, repairOf?: { readonly reason: string }) {
    const opened = draftOf(document);
    setStored(document);
    setDraft(opened);
    setBase(opened);
    setRevision(openedRevision);
    setRepair(repairOf);
    // Why the stored product fails goes beside its field, as the API's refusal of a save would.
    setRepairErrors(repairOf === undefined ? {} : fieldErrors(new ApiError(409, 'stored_product_invalid', repairOf.reason), (field) => FIELDS.test(field)).fields);
  }
  /** Clears what was said of the version on screen before: a version just opened starts with no notice, no refusal. */
  function clearNotices() {
    setChangedElsewhere(undefined);
    setRebased(undefined);
    refusal.clear();
    setProblems({});
  }
  /** After a 412: the product as it is now, which the operator's changes are compared with. */
  const readCurrent = async () => {
    try {
      setChangedElsewhere({ current: await api.get<CreditProduct>(path`/credit-products/${productId!}`) });
    } catch (failure) {
      setChangedElsewhere({ failure: errorMessage(failure) });
    }
  };
  const applyMyChanges = (current: CreditProduct) => {
    const now = draftOf(current);
    const comparison = compareDrafts(base!, draft, now);
    const mine = rebaseDraft(base!, draft, now);
    openVersion(current, current.revision);
    clearNotices();
    // Set after opening the version (the last set wins): the draft is the operator's changes on it, and says so.
    setDraft(mine);
    setRebased({ revision: current.revision, replaced: comparison.conflicts.map((field) => ({ field, theirs: fieldSummary(now, field) })) });
    setSaved(false);
    setSavedCount((count) => count + 1);
  };
  const discardMyChanges = (current: CreditProduct) => {
    openVersion(current, current.revision);
    clearNotices();
    setSaved(false);
    setSavedCount((count) => count + 1);
    screenHeading()?.focus();
  };
  // What was applied is said where focus goes, so that it is read out and the review starts there.
  useEffect(() => {
    if (rebased !== undefined) rebasedNotice.current?.focus();
  }, [rebased]);

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
              This product fails validation and could not be opened to repair: {readFailure.message}. Until that field is changed (
              <code>PATCH /v1/credit-products/{productId}</code>), the usage it prices is dead-lettered as <code>stored_product_invalid</code>.
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
      {repair !== undefined && (
        <div class="notice">
          <p class="error" role="alert">
            This stored product fails validation: {repair.reason}. Until it is saved valid, the usage it prices is dead-lettered as <code>stored_product_invalid</code>.
          </p>
          <p>
            The form shows it as stored. Correct what the message names and save: the save replaces every field with what the form shows, and repairs the product.
          </p>
        </div>
      )}
      {(creating || revision !== undefined) && (
        <form
          noValidate
          onSubmit={busyWhile(async (event) => {
            event.preventDefault();
            refusal.clear();
            setRepairErrors({});
            setChangedElsewhere(undefined);
            // Editing, the rules and the bundles go only when changed: only what is sent is checked.
            const body = creating ? bodyOf(draft, true) : changeOf(draft, stored);
            const found = draftProblems(draft, body);
            setProblems(found);
            if (Object.keys(found).length > 0) return;
            try {
              const product = creating
                ? await api.post<CreditProduct>('/credit-products', { body })
                : await api.patch<CreditProduct>(path`/credit-products/${productId!}`, { body, ifMatch: `"${revision!}"` });
              openVersion(product, product.revision);
              clearNotices();
              setSaved(true);
              setSavedCount((count) => count + 1);
              if (creating) navigate({ screen: 'product', productId: product.id }, { created: product.id });
            } catch (failure) {
              // What was typed stays: the product as it is now is read, to compare and rebase on.
              if (failure instanceof ApiError && failure.code === 'product_changed') await readCurrent();
              else refusal.refused(failure);
            }
          })}
        >
          <div class="grid">
            {creating && (
              <Field label="Product id" value={draft.id} error={errors.id} hint="Optional: letters, digits, _ . : -" onInput={(event) => update({ id: event.currentTarget.value })} />
            )}
            <Field label="Name" required value={draft.name} error={errors.name} onInput={(event) => update({ name: event.currentTarget.value })} />
            <Field label="Description" value={draft.description} error={errors.description} onInput={(event) => update({ description: event.currentTarget.value })} />
            <Field
              label="Warning limit"
              inputMode="decimal"
              pattern={CREDITS_INPUT_PATTERN}
              value={draft.lowBalanceThreshold}
              error={errors.lowBalanceThreshold}
              hint="Low-balance warning below this many credits; empty for none."
              onInput={(event) => update({ lowBalanceThreshold: event.currentTarget.value })}
            />
          </div>

          <fieldset>
            <legend>Consumption rules</legend>
            {draft.consumption.map((rule, index) => (
              <fieldset class="row" key={index}>
                <legend>Rule {index + 1}</legend>
                {problems[ruleField(index)] !== undefined && (
                  <small class="error" role="alert">
                    {problems[ruleField(index)]}
                  </small>
                )}
                <Field label="Event name" value={rule.event} error={errors[`consumption.${index}.event`]} onInput={(event) => updateRule(index, { event: event.currentTarget.value })} />
                <Field
                  label="Credits"
                  inputMode="decimal"
                  value={rule.credits}
                  error={errors[`consumption.${index}.credits`]}
                  onInput={(event) => updateRule(index, { credits: event.currentTarget.value })}
                />
                <Field
                  label="Per unit of property"
                  value={rule.perUnitOf}
                  hint="Empty: per event."
                  error={errors[`consumption.${index}.perUnitOf`]}
                  onInput={(event) => updateRule(index, { perUnitOf: event.currentTarget.value })}
                />
                <FilterRows
                  rule={rule}
                  index={index}
                  errors={whereErrors(errors, index)}
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
                <Field label="Bundle id" value={bundle.id} error={errors[`bundles.${index}.id`]} onInput={(event) => updateBundle(index, { id: event.currentTarget.value })} />
                <Field
                  label="Bundle credits"
                  inputMode="decimal"
                  value={bundle.credits}
                  error={errors[`bundles.${index}.credits`]}
                  onInput={(event) => updateBundle(index, { credits: event.currentTarget.value })}
                />
                <Field
                  label="Price"
                  inputMode="decimal"
                  value={bundle.amount}
                  error={errors[`bundles.${index}.price.amount`]}
                  onInput={(event) => updateBundle(index, { amount: event.currentTarget.value })}
                />
                <Field
                  label="Currency"
                  value={bundle.currency}
                  maxLength={3}
                  error={errors[`bundles.${index}.price.currency`]}
                  onInput={(event) => updateBundle(index, { currency: event.currentTarget.value })}
                />
                <CheckboxField
                  label="Shown as a purchase option on the portal"
                  checked={bundle.purchaseOption}
                  error={errors[`bundles.${index}.purchaseOption`]}
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
          {changedElsewhere !== undefined && (
            <ChangedElsewhere
              state={changedElsewhere}
              base={base!}
              draft={draft}
              busy={busy}
              onApply={applyMyChanges}
              onDiscard={discardMyChanges}
              onReadAgain={busyWhile(readCurrent)}
              onReopen={readAgain}
            />
          )}
          {rebased !== undefined && (
            <div class="notice">
              <p role="status" tabIndex={-1} ref={rebasedNotice}>
                Your changes are applied to revision {rebased.revision}, the current version: review them, then save.
              </p>
              {rebased.replaced.length > 0 && (
                <>
                  <p>Where the other change had set a field you changed too, yours replaced theirs:</p>
                  <ul>
                    {rebased.replaced.map(({ field, theirs }) => (
                      <li key={field}>
                        {FIELD_LABELS[field]}: theirs was {theirs}
                      </li>
                    ))}
                  </ul>
                </>
              )}
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

/**
 * A save refused for a change made meanwhile: what was typed is kept, the fields both sides
 * changed are named with each side's value, and the operator applies their changes to the
 * current version (to review before saving) or discards them.
 */
function ChangedElsewhere({
  state,
  base,
  draft,
  busy,
  onApply,
  onDiscard,
  onReadAgain,
  onReopen,
}: {
  state: { readonly current: CreditProduct } | { readonly failure: string };
  base: Draft;
  draft: Draft;
  busy: boolean;
  onApply: (current: CreditProduct) => void;
  onDiscard: (current: CreditProduct) => void;
  onReadAgain: () => void;
  onReopen: () => void;
}) {
  if ('failure' in state) {
    return (
      <div class="notice">
        <p class="error" role="alert">
          Not saved: someone else changed this product after you opened it, and the current version could not be read: {state.failure}. What you typed is kept.
        </p>
        <div>
          <button type="button" class="secondary" disabled={busy} onClick={onReadAgain}>
            Read the current version
          </button>{' '}
          {/* A product that fails validation again is read anew, to repair, only by opening it again. */}
          <button type="button" class="secondary" onClick={onReopen}>
            Discard my changes
          </button>
        </div>
      </div>
    );
  }
  const { current } = state;
  const now = draftOf(current);
  const { mine, theirs, conflicts } = compareDrafts(base, draft, now);
  const both = mine.filter((field) => theirs.includes(field));
  return (
    <div class="notice">
      <p class="error" role="alert">
        Not saved: someone else changed this product after you opened it (it is now at revision {current.revision}), and saving would have undone their change. What you typed
        is kept.
      </p>
      {both.length > 0 ? (
        <>
          <p>They also changed fields you changed:</p>
          <ul>
            {both.map((field) => (
              <li key={field}>
                {FIELD_LABELS[field]}: {conflicts.includes(field) ? `theirs ${fieldSummary(now, field)}; yours ${fieldSummary(draft, field)}` : `they set it as you did`}
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p>
          They changed {theirs.length > 0 ? fieldList(theirs) : 'nothing the form shows'}; you changed {mine.length > 0 ? fieldList(mine) : 'nothing'}: none of the same fields.
        </p>
      )}
      <p>Applying takes the current version and sets on it the fields you changed, for you to review and save; where you both changed a field, yours replaces theirs.</p>
      <div>
        <button type="button" onClick={() => onApply(current)}>
          Apply my changes to the current version
        </button>{' '}
        <button type="button" class="secondary" onClick={() => onDiscard(current)}>
          Discard my changes
        </button>
      </div>
    </div>
  );
}
