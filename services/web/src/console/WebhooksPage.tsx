import { useState } from 'preact/hooks';
import { errorMessage, everyItem, path, type ApiClient } from '../shared/apiClient';
import type { Page, WebhookDelivery, WebhookEndpoint, WebhookEventType, WebhookTestResult } from '../shared/apiTypes';
import { formatTime, keyLabel } from '../shared/format';
import { ConfirmDialog, ErrorMessage, Field, Pager, ScrollingTable, SelectField, useBusyAction, useFormRefusal, usePager, useRead } from '../shared/ui';

/**
 * What each event type is, in an operator's words. Keyed by the API's own type, so an event type
 * added there fails the console's build until it is described here.
 */
const EVENT_TYPES: Readonly<Record<WebhookEventType, string>> = {
  'credit_balance.low': 'Below its warning limit',
  'credit_balance.depleted': 'Depleted (zero or below)',
  'credit_balance.topped_up': 'Topped up by hand or opened with credits',
  'credit_balance.purchased': 'Bundle bought',
  'credit_balance.granted': 'Subscription grant',
  'credit_balance.refunded': 'Charge refunded',
  'hold.expired': 'Hold expired',
};
const ALL_TYPES = Object.keys(EVENT_TYPES) as WebhookEventType[];

/** A signing secret, shown once: right after the endpoint was registered or its secret rotated. */
function SecretNotice({ secret, url, rotated }: { secret: string; url: string; rotated: boolean }) {
  return (
    <div class="notice" role="status">
      <label for="webhook-secret">Signing secret for {url}</label>
      <input id="webhook-secret" readOnly value={secret} onFocus={(event) => event.currentTarget.select()} />
      <small>
        Shown only now: copy it to the receiver, which verifies each message with it (any Standard Webhooks library).
        {rotated && ' Until the previous secret expires, messages carry a signature with each.'}
      </small>
    </div>
  );
}

/** Each attempt of a delivery: when, how long, and what the receiver answered (or why none came). */
function AttemptLog({ delivery }: { delivery: WebhookDelivery }) {
  if (delivery.attemptLog.length === 0) return <>{delivery.attempts}</>;
  return (
    <details>
      <summary>{delivery.attempts}</summary>
      <ol>
        {delivery.attemptLog.map((attempt) => (
          <li key={attempt.attempt}>
            {formatTime(attempt.startedAt)}, {attempt.durationMs} ms: {attempt.statusCode !== null ? `HTTP ${attempt.statusCode}` : (attempt.error ?? 'no answer')}
            {attempt.responseBody !== null && attempt.responseBody !== '' && (
              <>
                {' '}
                <code>{attempt.responseBody}</code>
              </>
            )}
          </li>
        ))}
      </ol>
    </details>
  );
}

/** What the receiver made of a test message, in words. */
function testOutcome(result: WebhookTestResult): string {
  const answer = result.statusCode !== null ? `HTTP ${result.statusCode}` : (result.error ?? 'no answer');
  const body = result.responseBody !== null && result.responseBody !== '' ? `: ${result.responseBody}` : '';
  return `Test ${result.eventType} ${result.delivered ? 'delivered' : 'not delivered'} (${answer}${body}) in ${result.durationMs} ms.`;
}

/** A card's control's id and accessible name: its visible words, then the card's URL. */
type NameControl = (control: string) => { id: string; 'aria-labelledby': string };

/**
 * Sends the endpoint an example message of one of its event types, signed as a delivery is, and
 * says what the receiver answered. Nothing is recorded.
 */
function SendTest({ api, endpoint, named }: { api: ApiClient; endpoint: WebhookEndpoint; named: NameControl }) {
  const [type, setType] = useState(endpoint.events[0] ?? '');
  const [outcome, setOutcome] = useState<{ text: string; ok: boolean }>();
  const [busy, busyWhile] = useBusyAction();
  return (
    <>
      <div class="inline-form">
        <SelectField label={`Test event for ${endpoint.url}`} value={type} onChange={(event) => setType(event.currentTarget.value)}>
          {endpoint.events.map((event) => (
            <option key={event} value={event}>
              {EVENT_TYPES[event as WebhookEventType] ?? event} ({event})
            </option>
          ))}
        </SelectField>
        <button
          type="button"
          class="secondary"
          {...named('test')}
          disabled={busy}
          onClick={busyWhile(async () => {
            setOutcome(undefined);
            try {
              const result = await api.post<WebhookTestResult>(path`/webhook-endpoints/${endpoint.id}/test`, { body: { eventType: type } });
              setOutcome({ text: testOutcome(result), ok: result.delivered });
            } catch (failure) {
              setOutcome({ text: errorMessage(failure), ok: false });
            }
          })}
        >
          Send test
        </button>
      </div>
      {outcome !== undefined && (
        <p role="status" class={outcome.ok ? undefined : 'error'}>
          {outcome.text}
        </p>
      )}
    </>
  );
}

/** An endpoint's deliveries, newest first, a page at a time (the API's `before` cursor). */
function Deliveries({ api, endpoint }: { api: ApiClient; endpoint: WebhookEndpoint }) {
  const [page, setPage] = useState<Page<WebhookDelivery>>();
  // A Send again refused; what a read failed is apart, shown until a read succeeds.
  const [error, setError] = useState<string>();
  const [version, setVersion] = useState(0);
  const pager = usePager();
  const before = pager.cursor;
  const readFailure = useRead(
    () => api.get<Page<WebhookDelivery>>(path`/webhook-endpoints/${endpoint.id}/deliveries`, { query: { limit: '50', before } }).then(setPage),
    [api, endpoint.id, version, before],
  );
  const deliveries = page?.items;
  return (
    <>
      <ScrollingTable caption={pager.number === 1 ? 'Recent deliveries' : `Deliveries, page ${pager.number}`} columns={['Event', 'Balance', 'Status', 'Attempts', 'Last answer', 'Delivered', 'Action']}>
        <tbody>
          {deliveries?.length === 0 && (
            <tr>
              <td colSpan={7}>Nothing sent yet.</td>
            </tr>
          )}
          {deliveries?.map((delivery) => {
            const last = delivery.attemptLog[delivery.attemptLog.length - 1];
            return (
              <tr key={delivery.id}>
                <td>{delivery.eventType}</td>
                <td>{delivery.balanceId}</td>
                <td>{delivery.status}</td>
                <td class="number">
                  <AttemptLog delivery={delivery} />
                </td>
                <td>{last === undefined ? '' : last.statusCode !== null ? `HTTP ${last.statusCode}` : (last.error ?? '')}</td>
                <td>{delivery.deliveredAt === null ? '' : formatTime(delivery.deliveredAt)}</td>
                <td>
                  <button
                    type="button"
                    class="secondary"
                    // One per row: the name says which delivery (starting with the visible words).
                    aria-label={`Send again ${delivery.eventType} of ${delivery.balanceId}, raised ${formatTime(delivery.createdAt)}`}
                    onClick={async () => {
                      setError(undefined);
                      try {
                        await api.post<WebhookDelivery>(path`/webhook-endpoints/${endpoint.id}/deliveries/${delivery.id}/retry`);
                        setVersion(version + 1);
                      } catch (failure) {
                        setError(errorMessage(failure));
                      }
                    }}
                  >
                    Send again
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </ScrollingTable>
      <ErrorMessage message={readFailure} />
      <ErrorMessage message={error} />
      <Pager pager={pager} next={page?.next} labels={['Newer deliveries', 'Older deliveries']} />
      <button type="button" class="secondary" onClick={() => setVersion(version + 1)}>
        Refresh deliveries
      </button>
    </>
  );
}

/**
 * Webhook endpoints: where Tally POSTs balance events. Register one (its secret is shown once),
 * pause and resume it, rotate its secret, read what was sent and send a delivery again.
 */
export function WebhooksPage({ api }: { api: ApiClient }) {
  const [endpoints, setEndpoints] = useState<WebhookEndpoint[]>([]);
  const [version, setVersion] = useState(0);
  const [secret, setSecret] = useState<{ secret: string; url: string; rotated: boolean }>();
  const [open, setOpen] = useState<string>();
  const [deleting, setDeleting] = useState<WebhookEndpoint>();
  // An endpoint whose previous secret still signs: rotating again stops that one at once.
  const [rerotating, setRerotating] = useState<WebhookEndpoint>();
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [events, setEvents] = useState<readonly WebhookEventType[]>(['credit_balance.low']);
  // The register form's refusal; its message for the whole form also says why a change to an
  // endpoint above (Disable, Rotate secret) was refused, each clearing the other.
  const refusal = useFormRefusal((field) => ['url', 'events', 'description'].includes(field));
  // One change at a time: a second click on Rotate secret would rotate twice and could show the
  // secret an earlier answer brought; on Register endpoint it would register it twice.
  const [acting, actWhile] = useBusyAction();
  const [registering, registerWhile] = useBusyAction();
  const readFailure = useRead(() => everyItem<WebhookEndpoint>(api, '/webhook-endpoints').then(setEndpoints), [api, version]);

  const act = actWhile(async (change: () => Promise<unknown>) => {
    refusal.setGeneral(undefined);
    try {
      await change();
      setVersion((current) => current + 1);
    } catch (failure) {
      refusal.setGeneral(errorMessage(failure));
    }
  });

  const rotateSecret = async (endpoint: WebhookEndpoint) => {
    const rotated = await api.post<WebhookEndpoint & { secret: string }>(path`/webhook-endpoints/${endpoint.id}/rotate-secret`);
    setSecret({ secret: rotated.secret, url: rotated.url, rotated: true });
  };

  return (
    <section>
      <h1>Webhooks</h1>
      <p>
        Tally POSTs the chosen balance events to each endpoint, signed, in ledger order per balance, retrying with backoff until it answers 2xx. An endpoint
        that fails for the whole retry period is disabled, its deliveries waiting until it is enabled again; Enable sends them all, the given-up one
        first (unless a later one of its balance was delivered since), each balance's in order.
      </p>
      {secret !== undefined && <SecretNotice {...secret} />}
      <ErrorMessage message={readFailure} />
      <ErrorMessage message={refusal.general} />
      {endpoints.length === 0 && <p>No webhook endpoints yet.</p>}
      {endpoints.map((endpoint) => {
        // N cards have N of each control: each is named by its visible words and the card's URL
        // (aria-labelledby: the control itself, then the URL in the heading).
        const urlId = `webhook-${endpoint.id}-url`;
        const named: NameControl = (control) => ({ id: `${urlId}-${control}`, 'aria-labelledby': `${urlId}-${control} ${urlId}` });
        const previousLive = endpoint.previousSecretExpiresAt !== null && Date.parse(endpoint.previousSecretExpiresAt) > Date.now();
        return (
          <section class="card" key={endpoint.id} aria-label={`Endpoint ${endpoint.url}`}>
            <h2>
              <span id={urlId}>{endpoint.url}</span> <small>{endpoint.enabled ? 'enabled' : 'disabled'}</small>
            </h2>
            {endpoint.description !== null && <p>{endpoint.description}</p>}
            <p>Sends: {endpoint.events.map((event) => EVENT_TYPES[event as WebhookEventType] ?? event).join(', ')}.</p>
            {endpoint.disabledAt !== null && (
              <p class="error">
                Disabled {formatTime(endpoint.disabledAt)}: {endpoint.disabledReason}
              </p>
            )}
            <p>
              <small>
                Registered {formatTime(endpoint.createdAt)}
                {endpoint.createdBy !== null && ` by ${keyLabel(endpoint.createdBy)}`}
                {endpoint.updatedAt !== endpoint.createdAt && `; changed ${formatTime(endpoint.updatedAt)}${endpoint.updatedBy === null ? '' : ` by ${keyLabel(endpoint.updatedBy)}`}`}
                {endpoint.previousSecretExpiresAt !== null && `; the previous secret signs too until ${formatTime(endpoint.previousSecretExpiresAt)}`}
              </small>
            </p>
            <div class="actions">
              <button
                type="button"
                class="secondary"
                {...named('enable')}
                disabled={acting}
                onClick={() => void act(() => api.patch(path`/webhook-endpoints/${endpoint.id}`, { body: { enabled: !endpoint.enabled } }))}
              >
                {endpoint.enabled ? 'Disable' : 'Enable'}
              </button>
              <button type="button" class="secondary" {...named('rotate')} disabled={acting} onClick={() => (previousLive ? setRerotating(endpoint) : void act(() => rotateSecret(endpoint)))}>
                Rotate secret
              </button>
              <button
                type="button"
                class="secondary"
                {...named('deliveries')}
                aria-expanded={open === endpoint.id}
                onClick={() => setOpen(open === endpoint.id ? undefined : endpoint.id)}
              >
                {open === endpoint.id ? 'Hide deliveries' : 'Show deliveries'}
              </button>
              <button type="button" class="secondary" {...named('delete')} onClick={() => setDeleting(endpoint)}>
                Delete
              </button>
            </div>
            <SendTest api={api} endpoint={endpoint} named={named} />
            {open === endpoint.id && <Deliveries api={api} endpoint={endpoint} />}
          </section>
        );
      })}
      <ConfirmDialog
        title={`Rotate the secret again: ${rerotating?.url ?? ''}`}
        open={rerotating !== undefined}
        confirmLabel="Rotate secret"
        keepLabel="Keep both secrets"
        onClose={() => setRerotating(undefined)}
        onConfirm={async () => {
          if (rerotating === undefined) return;
          await rotateSecret(rerotating);
          setVersion((current) => current + 1);
        }}
      >
        <p>
          The previous secret still signs until {formatTime(rerotating?.previousSecretExpiresAt ?? new Date().toISOString())}. Rotating
          again keeps only the current one beside the new one: the previous secret stops signing at once, and a receiver still verifying with it refuses
          every message from now on. Right when that secret leaked; otherwise wait until it expires.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        title={`Delete endpoint: ${deleting?.url ?? ''}`}
        open={deleting !== undefined}
        confirmLabel="Delete endpoint"
        keepLabel="Keep endpoint"
        onClose={() => setDeleting(undefined)}
        onConfirm={async () => {
          if (deleting === undefined) return;
          await api.delete(path`/webhook-endpoints/${deleting.id}`);
          setVersion(version + 1);
        }}
      >
        <p>Deletes the endpoint with its deliveries and their attempts. Nothing more is sent to it.</p>
      </ConfirmDialog>
      <h2>Register an endpoint</h2>
      <form
        noValidate
        onSubmit={registerWhile(async (event) => {
          event.preventDefault();
          refusal.clear();
          try {
            const created = await api.post<WebhookEndpoint & { secret: string }>('/webhook-endpoints', {
              body: { url, events, ...(description !== '' ? { description } : {}) },
            });
            setSecret({ secret: created.secret, url: created.url, rotated: false });
            setUrl('');
            setDescription('');
            setVersion((current) => current + 1);
          } catch (failure) {
            refusal.refused(failure);
          }
        })}
      >
        <Field label="Endpoint URL" value={url} required error={refusal.errors.url} hint="http or https, reachable from Tally." onInput={(event) => setUrl(event.currentTarget.value)} />
        <Field label="Description" value={description} maxLength={500} error={refusal.errors.description} onInput={(event) => setDescription(event.currentTarget.value)} />
        <fieldset aria-describedby={refusal.errors.events !== undefined ? 'webhook-events-error' : undefined}>
          <legend>Events to send</legend>
          {ALL_TYPES.map((type) => (
            <div class="field checkbox" key={type}>
              <label>
                <input
                  type="checkbox"
                  checked={events.includes(type)}
                  onChange={(event) => setEvents(event.currentTarget.checked ? [...events, type] : events.filter((chosen) => chosen !== type))}
                />{' '}
                {EVENT_TYPES[type]} <small>{type}</small>
              </label>
            </div>
          ))}
          {refusal.errors.events !== undefined && (
            <small id="webhook-events-error" class="error" role="alert">
              {refusal.errors.events}
            </small>
          )}
        </fieldset>
        <button type="submit" disabled={registering || url === '' || events.length === 0}>
          Register endpoint
        </button>
      </form>
    </section>
  );
}
