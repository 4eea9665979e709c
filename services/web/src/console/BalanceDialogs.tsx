import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, everyItem, newIdempotencyKey, path, type ApiClient } from '../shared/apiClient';
import type { BalanceChange, CreditBalance, CreditProduct, LedgerEntry } from '../shared/apiTypes';
import { CREDITS_INPUT_PATTERN, entryLabel, formatCredits, formatTime } from '../shared/format';
import { rebaseEdits } from '../shared/rebaseEdits';
import { Dialog, ErrorMessage, Field, SelectField, useBusyAction, useFormRefusal } from '../shared/ui';

/** A balance's warning limit, in credits; empty for none. */
function WarningLimitField({ value, error, hint, onInput }: { value: string; error: string | undefined; hint: string; onInput: (value: string) => void }) {
  return <Field label="Warning limit" inputMode="decimal" pattern={CREDITS_INPUT_PATTERN} value={value} error={error} hint={hint} onInput={(event) => onInput(event.currentTarget.value)} />;
}

/** Add credit balance: product, name, starting balance and warning limit (the product's unless changed). */
export function AddBalanceDialog({ api, customerId, open, onClose, onAdded }: { api: ApiClient; customerId: string; open: boolean; onClose: () => void; onAdded: (balance: CreditBalance) => void }) {
  const [products, setProducts] = useState<CreditProduct[]>([]);
  const [productId, setProductId] = useState('');
  const [name, setName] = useState('');
  const [startingBalance, setStartingBalance] = useState('0');
  const [limit, setLimit] = useState('');
  const refusal = useFormRefusal((field) => ['productId', 'name', 'startingBalance', 'lowBalanceThreshold'].includes(field));
  const [busy, busyWhile] = useBusyAction();
  useEffect(() => {
    if (!open) return;
    // Each opening starts afresh: nothing typed or refused the last time stays.
    choose('', []);
    setStartingBalance('0');
    refusal.clear();
    everyItem<CreditProduct>(api, '/credit-products').then(
      (items) => {
        setProducts(items);
        const first = items[0];
        if (first !== undefined) choose(first.id, items);
      },
      (failure: Error) => refusal.setGeneral(failure.message),
    );
  }, [api, open]);
  function choose(id: string, list = products) {
    setProductId(id);
    const product = list.find((candidate) => candidate.id === id);
    setName(product?.name ?? '');
    setLimit(product?.lowBalanceThreshold ?? '');
  }
  return (
    <Dialog title="Add credit balance" open={open} onClose={onClose}>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          try {
            const product = products.find((candidate) => candidate.id === productId);
            const balance = await api.post<CreditBalance>(path`/customers/${customerId}/credit-balances`, {
              body: {
                productId,
                ...(name !== '' ? { name } : {}),
                startingBalance: startingBalance === '' ? '0' : startingBalance,
                // Left as the product's: absent, so a later change of the product's limit is not overridden.
                ...(limit === (product?.lowBalanceThreshold ?? '') ? {} : { lowBalanceThreshold: limit === '' ? null : limit }),
              },
            });
            onAdded(balance);
            onClose();
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <SelectField label="Credit product" value={productId} error={refusal.errors.productId} onChange={(event) => choose(event.currentTarget.value)}>
          {products.length === 0 && <option value="">No credit products yet</option>}
          {products.map((product) => (
            <option key={product.id} value={product.id}>
              {product.name}
            </option>
          ))}
        </SelectField>
        <Field label="Name" value={name} error={refusal.errors.name} onInput={(event) => setName(event.currentTarget.value)} />
        <Field
          label="Starting balance"
          inputMode="decimal"
          pattern={CREDITS_INPUT_PATTERN}
          value={startingBalance}
          error={refusal.errors.startingBalance}
          onInput={(event) => setStartingBalance(event.currentTarget.value)}
        />
        <WarningLimitField value={limit} error={refusal.errors.lowBalanceThreshold} hint="The product's, unless changed; empty for none." onInput={setLimit} />
        <ErrorMessage message={refusal.general} />
        <div class="actions">
          <button type="submit" disabled={busy || productId === ''}>
            Add
          </button>
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The settings the Edit balance dialog changes, as its fields hold them: an empty limit is none. */
interface EditableSettings {
  readonly name: string;
  readonly limit: string;
}

const settingsOf = (balance: CreditBalance): EditableSettings => ({ name: balance.name, limit: balance.lowBalanceThreshold ?? '' });

/** What the operator changed from `read`, as the PATCH body: only those fields, so nothing else read is written back. */
function changesFrom(read: EditableSettings, typed: EditableSettings): Record<string, string | null> {
  return {
    ...(typed.name !== read.name ? { name: typed.name } : {}),
    ...(typed.limit !== read.limit ? { lowBalanceThreshold: typed.limit === '' ? null : typed.limit } : {}),
  };
}

/** How many times a save is sent again on a balance changed (usage, a top-up, another field) while the dialog was open. */
const SAVE_ATTEMPTS = 3;

/** The fields of the Edit balance dialog, as its message names them. */
const SETTINGS = [
  { field: 'name', words: (value: string) => `its name is now "${value}"` },
  { field: 'limit', words: (value: string) => `its warning limit is now ${value === '' ? 'none' : value}` },
] as const;
const SETTING_FIELDS = SETTINGS.map(({ field }) => field);

/**
 * Edit balance: its name and warning limit (PATCH /v1/credit-balances/{id}); an empty limit
 * removes it. Filled with the balance's values at each opening. A save sends only the fields the
 * operator changed, against the version read (If-Match, its revision): a change made meanwhile
 * by someone else is never overwritten, and what the operator typed is never lost. On 412 the
 * balance is read again and becomes the version the dialog changes: a field the operator left
 * keeps the other's change, a field the operator changed keeps the typing. When the other change
 * touched none of the fields the operator changed (only the figures moved, or the other field),
 * the save is sent again on the new version; when it set a field the operator changed too, the
 * dialog names that field's value now and keeps the typing: a second Save applies it.
 */
export function EditBalanceDialog({
  api,
  balance,
  open,
  onClose,
  onSaved,
}: {
  api: ApiClient;
  balance: CreditBalance;
  open: boolean;
  onClose: () => void;
  /** The balance as a save left it, or as read again after another change: shown at once. */
  onSaved: (balance: CreditBalance) => void;
}) {
  const [name, setName] = useState('');
  const [limit, setLimit] = useState('');
  // The version the dialog changes: what the operator's changes are told from, and what a save is made against.
  const [read, setRead] = useState<CreditBalance>(balance);
  const refusal = useFormRefusal((field) => field === 'name' || field === 'lowBalanceThreshold');
  const [busy, busyWhile] = useBusyAction();
  function show(settings: EditableSettings) {
    setName(settings.name);
    setLimit(settings.limit);
  }
  useEffect(() => {
    if (!open) return;
    setRead(balance);
    show(settingsOf(balance));
    refusal.clear();
  }, [open]);
  /** Saves what was typed against `version`; on 412, on the balance as it is now unless the other change set a field the operator changed. */
  async function save(version: CreditBalance, typed: EditableSettings): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      const changes = changesFrom(settingsOf(version), typed);
      // Nothing left to change (the other change set what was typed): nothing to send.
      if (Object.keys(changes).length === 0) {
        onClose();
        return;
      }
      try {
        onSaved(await api.patch<CreditBalance>(path`/credit-balances/${balance.id}`, { body: changes, ifMatch: `"${version.revision}"` }));
        onClose();
        return;
      } catch (failure) {
        if (!(failure instanceof ApiError && failure.code === 'balance_changed')) throw failure;
      }
      // Consistent: the read model may not have the change the 412 was for yet.
      const current = await api.get<CreditBalance>(path`/credit-balances/${balance.id}`, { query: { consistent: 'true' } });
      onSaved(current);
      const now = settingsOf(current);
      // A field the operator left takes the other change; one the operator changed keeps the typing, and is not sent unasked where the other change set it to something else.
      const rebased = rebaseEdits(SETTING_FIELDS, settingsOf(version), typed, now);
      // From here on the dialog changes the version as it is now, with the operator's typing on it.
      setRead(current);
      show(rebased.values);
      version = current;
      typed = rebased.values;
      if (rebased.conflicts.length > 0) {
        const changed = SETTINGS.filter(({ field }) => rebased.conflicts.includes(field)).map(({ field, words }) => words(now[field]));
        refusal.setGeneral(`This balance was changed meanwhile: ${changed.join(', ')}. Nothing was saved; the form keeps what you typed: Save applies it to the balance as it is now.`);
        return;
      }
      if (attempt >= SAVE_ATTEMPTS) {
        refusal.setGeneral('This balance kept changing while your change was sent. Nothing was saved; the form keeps what you typed: Save sends it again.');
        return;
      }
    }
  }
  return (
    <Dialog title={`Edit balance: ${balance.name}`} open={open} onClose={onClose}>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          try {
            await save(read, { name, limit });
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <Field label="Name" required value={name} maxLength={256} error={refusal.errors.name} onInput={(event) => setName(event.currentTarget.value)} />
        <WarningLimitField value={limit} error={refusal.errors.lowBalanceThreshold} hint="Low-balance warning below this many credits; empty for none." onInput={setLimit} />
        <ErrorMessage message={refusal.general} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save balance
          </button>
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** A change by hand: a top-up, retained usage (a manual deduction), or a refund of one charge. */
export type ChangeKind = 'top-up' | 'retain' | { readonly refund: LedgerEntry };

const KINDS = {
  'top-up': { title: 'Top up', route: 'top-ups' },
  retain: { title: 'Retain usage', route: 'deductions' },
  refund: { title: 'Refund', route: 'refunds' },
} as const;

/**
 * Top up, retain usage, or refund a charge, by hand. One Idempotency-Key per opening of the
 * dialog: a double click, or a retry after a lost answer, sends the same key, and the API
 * changes the balance once and answers the first result again (a refund needs none: the API
 * refunds a charge once, and the same request again answers the first refund).
 */
export function BalanceChangeDialog({
  api,
  balance,
  kind,
  onClose,
  onChanged,
  focusAfterRefund,
}: {
  api: ApiClient;
  balance: CreditBalance;
  kind: ChangeKind | undefined;
  onClose: () => void;
  onChanged: (change: BalanceChange) => void;
  /** Where focus goes once a refund is made: the charge's Refund button goes with it. */
  focusAfterRefund: () => HTMLElement | null;
}) {
  const [credits, setCredits] = useState('');
  const [reason, setReason] = useState('');
  const [key, setKey] = useState(newIdempotencyKey);
  const refusal = useFormRefusal((field) => field === 'credits' || field === 'reason');
  const charge = typeof kind === 'object' ? kind.refund : undefined;
  const refunded = useRef(false);
  // The key makes a double click change the balance once; this also says so on the button.
  const [busy, busyWhile] = useBusyAction();
  useEffect(() => {
    if (kind === undefined) return;
    refunded.current = false;
    // A refund gives back all of the charge unless made smaller.
    setCredits(charge?.credits ?? '');
    setReason('');
    refusal.clear();
    setKey(newIdempotencyKey());
  }, [kind]);
  const details = kind === undefined ? undefined : typeof kind === 'object' ? KINDS.refund : KINDS[kind];
  return (
    <Dialog title={`${details?.title ?? ''}: ${balance.name}`} open={kind !== undefined} onClose={onClose} focusAfterClose={() => (refunded.current ? focusAfterRefund() : undefined)}>
      <form
        noValidate
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          if (details === undefined) return;
          refusal.clear();
          try {
            const change = await api.post<BalanceChange>(path`/credit-balances/${balance.id}/` + details.route, {
              body: { ...(charge !== undefined ? { entryId: charge.id } : {}), credits, reason: reason === '' ? null : reason },
              // A refund's route takes none: its charge's id makes it once already.
              ...(charge === undefined ? { idempotencyKey: key } : {}),
            });
            refunded.current = charge !== undefined;
            onChanged(change);
            onClose();
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        {charge !== undefined && (
          <p>
            {entryLabel(charge)} at {formatTime(charge.occurredAt)} took {formatCredits(charge.credits ?? '0')} credits: at most that much comes back, once.
          </p>
        )}
        <Field label="Credits" inputMode="decimal" pattern={CREDITS_INPUT_PATTERN} required value={credits} error={refusal.errors.credits} onInput={(event) => setCredits(event.currentTarget.value)} />
        <Field label="Reason" value={reason} maxLength={500} error={refusal.errors.reason} onInput={(event) => setReason(event.currentTarget.value)} />
        <ErrorMessage message={refusal.general} />
        <div class="actions">
          <button type="submit" disabled={busy}>
            {details?.title}
          </button>
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
