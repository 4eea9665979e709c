import { useRef, useState } from 'preact/hooks';
import { everyItem, path, type ApiClient } from '../shared/apiClient';
import type { CreditProduct, Page, Plan } from '../shared/apiTypes';
import { formatCredits, formatTime, keyLabel, periodText } from '../shared/format';
import { ConfirmDialog, ErrorMessage, Field, Pager, ScrollingTable, SelectField, useBusyAction, useFormRefusal, usePager, useRead } from '../shared/ui';

interface ItemDraft {
  productId: string;
  creditsPerPeriod: string;
  period: 'month' | 'year' | 'days';
  days: string;
}

/** The most days a `{ days }` period takes: the API's bound (`period` in POST /v1/plans), checked here to say it beside Days. */
const MAX_PERIOD_DAYS = 3660;

/**
 * What the form refuses to send, by field (`items.0.days`), as the API would refuse it but said
 * beside the field: the API can only say that the period matches none of its forms.
 */
function itemProblems(items: readonly ItemDraft[]): Record<string, string> {
  const problems: Record<string, string> = {};
  items.forEach((item, index) => {
    if (item.period !== 'days') return;
    const days = item.days.trim();
    if (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > MAX_PERIOD_DAYS) problems[`items.${index}.days`] = `must be a whole number of days from 1 to ${MAX_PERIOD_DAYS}`;
  });
  return problems;
}

/** What a plan's status cell says: offered, or since when and by whom it is retired. */
function planStatus(plan: Plan): string {
  if (plan.retiredAt === null) return 'Offered';
  return `Retired ${formatTime(plan.retiredAt)}${plan.retiredBy === null ? '' : ` by ${keyLabel(plan.retiredBy)}`}`;
}

/**
 * Plans: each grants credits of its products every period. Created here; immutable once created,
 * and retired when the offer ends (its subscriptions go on, new ones are refused).
 */
export function PlansPage({ api }: { api: ApiClient }) {
  // A page of the plans at a time, in id order, as the API lists them.
  const [page, setPage] = useState<Page<Plan>>();
  const pager = usePager();
  const after = pager.cursor;
  const [retiring, setRetiring] = useState<Plan>();
  const [products, setProducts] = useState<CreditProduct[]>([]);
  const [name, setName] = useState('');
  const [items, setItems] = useState<ItemDraft[]>([]);
  // What the form refuses to send, by field, until it is sent again.
  const [problems, setProblems] = useState<Record<string, string>>({});
  // The plan just made: said here, since it is listed on whichever page its id sorts to.
  const [created, setCreated] = useState<Plan>();
  const refusal = useFormRefusal((field) => /^(name|items\.\d+\.(productId|creditsPerPeriod|period|period\.days))$/.test(field));
  const [version, setVersion] = useState(0);
  // A plan has no id of the client's making: a second click while the first is sent would make it twice.
  const [busy, busyWhile] = useBusyAction();
  // Read again after each change: a failure shows until a read succeeds.
  const readFailure = useRead(
    () =>
      Promise.all([
        api.get<Page<Plan>>('/plans', { query: { after, limit: '25' } }).then(setPage),
        everyItem<CreditProduct>(api, '/credit-products').then(setProducts),
      ]),
    [api, version, after],
  );
  // Where focus goes when a product's row is removed with the button that had it.
  const addItemButton = useRef<HTMLButtonElement>(null);
  const newItem = (): ItemDraft => ({ productId: products[0]?.id ?? '', creditsPerPeriod: '', period: 'month', days: '30' });
  const updateItem = (index: number, change: Partial<ItemDraft>) => setItems(items.map((item, at) => (at === index ? { ...item, ...change } : item)));
  const plans = page?.items ?? [];
  return (
    <section>
      <h1>Plans</h1>
      <ErrorMessage message={readFailure} />
      <ScrollingTable caption="Plans" columns={['Plan', 'Grants', 'Created', 'By', 'Status']}>
        <tbody>
          {page?.items.length === 0 && (
            <tr>
              <td colSpan={5}>{pager.number === 1 ? 'No plans yet.' : 'No plans on this page.'}</td>
            </tr>
          )}
          {plans.map((plan) => (
            <tr key={plan.id}>
              <td>
                {plan.name} <small>{plan.id}</small>
              </td>
              <td>{plan.items.map((item) => `${formatCredits(item.creditsPerPeriod)} ${item.productId} ${periodText(item.period)}`).join('; ')}</td>
              <td>{formatTime(plan.createdAt)}</td>
              <td>{plan.createdBy === null ? '' : keyLabel(plan.createdBy)}</td>
              <td>
                {planStatus(plan)}
                {plan.retiredAt === null && (
                  <>
                    {' '}
                    <button type="button" class="secondary" aria-label={`Retire ${plan.name}`} onClick={() => setRetiring(plan)}>
                      Retire
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </ScrollingTable>
      <Pager pager={pager} next={page?.next} />
      <ConfirmDialog
        title={`Retire plan: ${retiring?.name ?? ''}`}
        open={retiring !== undefined}
        confirmLabel="Retire plan"
        keepLabel="Keep offering"
        onClose={() => setRetiring(undefined)}
        onConfirm={async () => {
          if (retiring === undefined) return;
          await api.post<Plan>(path`/plans/${retiring.id}/retire`);
          setVersion(version + 1);
        }}
      >
        <p>New subscriptions to it are refused; its subscriptions keep granting as before. This cannot be undone: a renewed offer is a new plan.</p>
      </ConfirmDialog>
      <h2>New plan</h2>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          setCreated(undefined);
          const found = itemProblems(items);
          setProblems(found);
          if (Object.keys(found).length > 0) return;
          try {
            const plan = await api.post<Plan>('/plans', {
              body: {
                name,
                items: items.map((item) => ({
                  productId: item.productId,
                  creditsPerPeriod: item.creditsPerPeriod,
                  period: item.period === 'days' ? { days: Number(item.days.trim()) } : item.period,
                })),
              },
            });
            setCreated(plan);
            setName('');
            setItems([]);
            setVersion(version + 1);
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <Field label="Plan name" value={name} error={refusal.errors.name} onInput={(event) => setName(event.currentTarget.value)} />
        {items.map((item, index) => (
          <fieldset class="row" key={index}>
            <legend>Credit product {index + 1}</legend>
            <SelectField label="Credit product" value={item.productId} error={refusal.errors[`items.${index}.productId`]} onChange={(event) => updateItem(index, { productId: event.currentTarget.value })}>
              {products.map((product) => (
                <option key={product.id} value={product.id}>
                  {product.name}
                </option>
              ))}
            </SelectField>
            <Field
              label="Credits per period"
              inputMode="decimal"
              value={item.creditsPerPeriod}
              error={refusal.errors[`items.${index}.creditsPerPeriod`]}
              onInput={(event) => updateItem(index, { creditsPerPeriod: event.currentTarget.value })}
            />
            <SelectField label="Period" value={item.period} error={refusal.errors[`items.${index}.period`]} onChange={(event) => updateItem(index, { period: event.currentTarget.value as ItemDraft['period'] })}>
              <option value="month">Month</option>
              <option value="year">Year</option>
              <option value="days">A number of days</option>
            </SelectField>
            {item.period === 'days' && (
              <Field
                label="Days"
                inputMode="numeric"
                value={item.days}
                hint={`1 to ${MAX_PERIOD_DAYS}`}
                error={problems[`items.${index}.days`] ?? refusal.errors[`items.${index}.period.days`]}
                onInput={(event) => updateItem(index, { days: event.currentTarget.value })}
              />
            )}
            <button
              type="button"
              class="secondary"
              onClick={() => {
                setItems(items.filter((_, at) => at !== index));
                // Problems are said by row: a removed row moves the rows after it up.
                setProblems({});
                addItemButton.current?.focus();
              }}
            >
              Remove credit product {index + 1}
            </button>
          </fieldset>
        ))}
        <button type="button" class="secondary" ref={addItemButton} onClick={() => setItems([...items, newItem()])} disabled={products.length === 0}>
          Add credit product to plan
        </button>
        <ErrorMessage message={refusal.general} />
        {created !== undefined && (
          <p class="ok" role="status">
            Created plan {created.name} ({created.id}).
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create plan
        </button>
      </form>
    </section>
  );
}
