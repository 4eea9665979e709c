import type { ComponentChildren, TargetedEvent } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorMessage, fieldErrors } from './apiClient';

let nextId = 0;
/** An id for a label's `for`, stable for the component's life. */
export function useId(prefix: string): string {
  const id = useRef<string | undefined>(undefined);
  if (id.current === undefined) id.current = `${prefix}-${++nextId}`;
  return id.current;
}

/**
 * A control's action that runs one at a time: `busy` from the moment it starts until it ends,
 * however it ends, so the control can be disabled meanwhile and a double click sends nothing
 * twice. The action handles its own failures; `busyWhile` wraps it for an onClick or onSubmit.
 */
export function useBusyAction(): [busy: boolean, busyWhile: <A extends unknown[]>(action: (...args: A) => Promise<void>) => (...args: A) => Promise<void>] {
  const [busy, setBusy] = useState(false);
  const busyWhile =
    <A extends unknown[]>(action: (...args: A) => Promise<void>) =>
    (...args: A) => {
      setBusy(true);
      return action(...args).finally(() => setBusy(false));
    };
  return [busy, busyWhile];
}

/**
 * A form's refusal by the API: its message split into the errors of the fields the form has
 * (shown under them) and the rest (fieldErrors), cleared when the form is sent or opened again.
 */
export function useFormRefusal(hasField: (field: string) => boolean) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState<string>();
  return {
    errors,
    general,
    /** A message for the form as a whole that is no refusal of what it sent: a read it needs failed, a change made beside it was refused. */
    setGeneral,
    clear() {
      setErrors({});
      setGeneral(undefined);
    },
    refused(failure: unknown) {
      const found = fieldErrors(failure, hasField);
      setErrors(found.fields);
      setGeneral(found.general);
    },
  };
}

/**
 * A labelled input: the label is the input's accessible name, and the field's error (from the
 * API's validation message) sits under it and is announced with it (aria-describedby).
 */
export interface FieldProps {
  readonly label: string;
  readonly value: string;
  readonly onInput?: (event: TargetedEvent<HTMLInputElement, Event>) => void;
  readonly error?: string | undefined;
  readonly hint?: string;
  readonly type?: 'text' | 'password' | 'month';
  readonly required?: boolean;
  readonly inputMode?: 'decimal' | 'numeric' | 'text';
  readonly pattern?: string;
  readonly maxLength?: number;
  readonly autoComplete?: string;
}

export function Field({ label, error, hint, ...input }: FieldProps) {
  const id = useId('field');
  const described = [hint !== undefined ? `${id}-hint` : '', error !== undefined ? `${id}-error` : ''].filter(Boolean).join(' ');
  const attributes = {
    id,
    value: input.value,
    onInput: input.onInput,
    required: input.required,
    inputMode: input.inputMode,
    pattern: input.pattern,
    maxLength: input.maxLength,
    autoComplete: input.autoComplete,
    'aria-invalid': error !== undefined,
    'aria-describedby': described || undefined,
  };
  return (
    <div class={`field${error !== undefined ? ' has-error' : ''}`}>
      <label for={id}>{label}</label>
      {/* A literal type each: preact's input types are a union keyed on it. */}
      {input.type === 'password' ? <input type="password" {...attributes} /> : input.type === 'month' ? <input type="month" {...attributes} /> : <input type="text" {...attributes} />}
      {hint !== undefined && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
      {error !== undefined && (
        <small id={`${id}-error`} class="error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

/** A labelled checkbox, its label after it; the field's error sits under it and is announced with it, as a Field's. */
export function CheckboxField({ label, checked, error, onChange }: { label: string; checked: boolean; error?: string | undefined; onChange: (event: TargetedEvent<HTMLInputElement, Event>) => void }) {
  const id = useId('checkbox');
  return (
    <div class={`field checkbox${error !== undefined ? ' has-error' : ''}`}>
      <label>
        <input type="checkbox" checked={checked} onChange={onChange} aria-invalid={error !== undefined} aria-describedby={error !== undefined ? `${id}-error` : undefined} /> {label}
      </label>
      {error !== undefined && (
        <small id={`${id}-error`} class="error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

export function SelectField(props: {
  label: string;
  value: string;
  error?: string | undefined;
  onChange: (event: TargetedEvent<HTMLSelectElement, Event>) => void;
  children: ComponentChildren;
}) {
  const { label, error, children } = props;
  const id = useId('select');
  return (
    <div class={`field${error !== undefined ? ' has-error' : ''}`}>
      <label for={id}>{label}</label>
      <select id={id} value={props.value} onChange={props.onChange} aria-invalid={error !== undefined} aria-describedby={error !== undefined ? `${id}-error` : undefined}>
        {children}
      </select>
      {error !== undefined && (
        <small id={`${id}-error`} class="error" role="alert">
          {error}
        </small>
      )}
    </div>
  );
}

/**
 * The screen's heading (its h1), made focusable by script only: where focus goes, for a keyboard
 * and a screen reader, after a change of screen or when what had focus goes away.
 */
export function screenHeading(): HTMLElement | null {
  const heading = document.querySelector<HTMLElement>('main h1');
  if (heading !== null) heading.tabIndex = -1;
  return heading;
}

/**
 * A modal dialog on the browser's own <dialog>: focus moves into it and stays there (to the
 * control marked `autofocus`, else the first), Escape closes it, and focus returns to what opened
 * it, or, when closed by `open` turning false, to what `focusAfterClose` answers (when what opened
 * it is about to go: a refunded charge's button). While `busy` says what is under way (a change
 * sent and not yet answered) it is said in the dialog and Escape does not close it: an answer
 * that came after the dialog was gone would land in whatever the screen shows by then.
 */
export function Dialog({
  title,
  open,
  onClose,
  focusAfterClose,
  busy,
  children,
}: {
  title: string;
  open: boolean;
  onClose: () => void;
  focusAfterClose?: () => HTMLElement | null | undefined;
  busy?: string | undefined;
  children: ComponentChildren;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId('dialog');
  useEffect(() => {
    const element = dialog.current;
    if (element === null) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) {
      element.close();
      focusAfterClose?.()?.focus();
    }
  }, [open]);
  const busyNow = busy !== undefined;
  useEffect(() => {
    if (!busyNow) return undefined;
    // The keydown, not only the cancel: Chrome closes on a second Escape in a row even when the
    // cancel is prevented. On the document: the control clicked is disabled meanwhile, so focus
    // may have left the dialog.
    const keep = (event: KeyboardEvent) => {
      if (event.key === 'Escape') event.preventDefault();
    };
    document.addEventListener('keydown', keep, true);
    return () => document.removeEventListener('keydown', keep, true);
  }, [busyNow]);
  return (
    <dialog
      ref={dialog}
      aria-labelledby={titleId}
      aria-busy={busyNow}
      onClose={onClose}
      onCancel={(event) => {
        if (busyNow) event.preventDefault();
      }}
      class="dialog"
    >
      <h2 id={titleId}>{title}</h2>
      {open && children}
      {open && busy !== undefined && (
        <p class="loading" role="status">
          {busy}
        </p>
      )}
    </dialog>
  );
}

/**
 * A confirmation before a change that cannot be taken back: the dialog says what it does, its
 * first button makes the change (and closes the dialog once it is made), the second keeps things
 * as they are, and has focus when it opens: an Enter held or pressed once too often keeps. A
 * refusal shows in the dialog, which stays open; while the change is under way the dialog stays
 * open too. Once the change is made, focus goes to the screen's heading: what opened the dialog
 * (a Retire, a Delete) usually goes with it.
 */
export function ConfirmDialog({
  title,
  open,
  confirmLabel,
  keepLabel,
  onConfirm,
  onClose,
  children,
}: {
  title: string;
  open: boolean;
  confirmLabel: string;
  keepLabel: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const [error, setError] = useState<string>();
  const [busy, busyWhile] = useBusyAction();
  const made = useRef(false);
  useEffect(() => {
    setError(undefined);
    if (open) made.current = false;
  }, [open]);
  return (
    <Dialog
      title={title}
      open={open}
      onClose={onClose}
      focusAfterClose={() => (made.current ? screenHeading() : undefined)}
      busy={busy ? 'Working…' : undefined}
    >
      {children}
      <ErrorMessage message={error} />
      <div class="actions">
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={busyWhile(async () => {
            setError(undefined);
            try {
              await onConfirm();
              made.current = true;
              onClose();
            } catch (failure) {
              setError(errorMessage(failure));
            }
          })}
        >
          {confirmLabel}
        </button>
        <button type="button" class="secondary" autofocus disabled={busy} onClick={onClose}>
          {keepLabel}
        </button>
      </div>
    </Dialog>
  );
}

/**
 * A table with its caption, in a box that scrolls sideways when the table is wider than the
 * screen (a phone). While it scrolls the box is a region named by the caption and in the tab
 * order, so a keyboard user can focus it and scroll with the arrow keys (WCAG 2.1.1, axe's
 * scrollable-region-focusable); while the table fits it adds no tab stop.
 */
export function ScrollingTable({
  caption,
  columns,
  class: className,
  children,
}: {
  caption: string;
  /** The column headings, each a `<th scope="col">`; none for a table whose rows head themselves. */
  columns?: readonly string[];
  class?: string;
  children: ComponentChildren;
}) {
  const captionId = useId('table-caption');
  const box = useRef<HTMLDivElement>(null);
  const [scrolls, setScrolls] = useState(false);
  useLayoutEffect(() => {
    const element = box.current;
    if (element === null) return undefined;
    const measure = () => setScrolls(element.scrollWidth > element.clientWidth);
    measure();
    // The box resizes with the window, the table with its rows: either may start or end the scroll.
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    if (element.firstElementChild !== null) observer.observe(element.firstElementChild);
    return () => observer.disconnect();
  }, []);
  return (
    <div ref={box} class="table-scroll" {...(scrolls ? { role: 'region', 'aria-labelledby': captionId, tabIndex: 0 } : {})}>
      <table {...(className !== undefined ? { class: className } : {})}>
        <caption id={captionId}>{caption}</caption>
        {columns !== undefined && (
          <thead>
            <tr>
              {columns.map((column) => (
                <th scope="col" key={column}>
                  {column}
                </th>
              ))}
            </tr>
          </thead>
        )}
        {children}
      </table>
    </div>
  );
}

/**
 * Says the screen is loading until its first read is answered: `read` is what the read keeps
 * (undefined until one succeeded), `failure` what useRead or usePolling returned. A failed read
 * says itself (ErrorMessage) instead, and once anything was read the screen shows it. A status
 * region, so a screen reader hears it.
 */
export function Loading({ read, failure }: { read: unknown; failure: string | undefined }) {
  return read === undefined && failure === undefined ? (
    <p class="loading" role="status">
      Loading…
    </p>
  ) : null;
}

export function ErrorMessage({ message }: { message: string | undefined }) {
  return message === undefined ? null : (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/**
 * Runs `load`, the screen's reads (each keeps what it read), from the first render and again
 * whenever `deps` change (a change made, a Refresh). Returns the last read's failure until a later
 * read succeeds: a failure is never still shown beside what a successful read brought. A read
 * overtaken by a newer one (deps changed meanwhile) says nothing.
 */
export function useRead(load: () => Promise<unknown>, deps: readonly unknown[]): string | undefined {
  const [error, setError] = useState<string>();
  useEffect(() => {
    let current = true;
    load().then(
      () => {
        if (current) setError(undefined);
      },
      (failure: unknown) => {
        if (current) setError(errorMessage(failure));
      },
    );
    return () => {
      current = false;
    };
  }, deps);
  return error;
}

/**
 * Polls `load` every `intervalMs` while the page is open (and visible), from the first render.
 * Returns the last failure's message, cleared by the next success: the page keeps showing the
 * last figures it had and says why they are not fresh. While `enabled` is false (a closed
 * disclosure, a run that has ended) nothing is loaded and no timer runs. `current` says whether
 * the poll is still the one running: a read answered after `deps` changed (a newer read under
 * way, maybe already answered) keeps nothing of what it read.
 */
export function usePolling(load: (current: () => boolean) => Promise<void> | void, intervalMs: number, deps: readonly unknown[], enabled = true): string | undefined {
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (!enabled) return undefined;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (stopped) return;
      if (document.visibilityState !== 'hidden') {
        try {
          await load(() => !stopped);
          if (!stopped) setError(undefined);
        } catch (failure) {
          if (!stopped) setError(errorMessage(failure));
        }
      }
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [...deps, enabled]);
  return error;
}

/**
 * Cursor pagination as the API has it: the cursors of the pages seen so far, so "Previous" goes
 * back and "Next" passes the page's `next` on. `cursor` is what to send for the page shown.
 */
export function usePager() {
  const [cursors, setCursors] = useState<string[]>([]);
  return { cursor: cursors.at(-1), number: cursors.length + 1, back: () => setCursors(cursors.slice(0, -1)), forward: (next: string) => setCursors([...cursors, next]), reset: () => setCursors([]) };
}

export function Pager({ pager, next, labels = ['Previous page', 'Next page'] }: { pager: ReturnType<typeof usePager>; next: string | null | undefined; labels?: readonly [string, string] }) {
  return (
    <div class="pager">
      <button type="button" class="secondary" disabled={pager.number === 1} onClick={pager.back}>
        {labels[0]}
      </button>
      <button type="button" class="secondary" disabled={next == null} onClick={() => next != null && pager.forward(next)}>
        {labels[1]}
      </button>
    </div>
  );
}
