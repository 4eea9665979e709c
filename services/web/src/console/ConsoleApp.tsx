import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, createApiClient, errorMessage, type ApiClient } from '../shared/apiClient';
import type { ConsoleSession } from '../shared/apiTypes';
import { keyLabel } from '../shared/format';
import { ErrorMessage, Field, screenHeading, useBusyAction } from '../shared/ui';
import { CatalogPage } from './CatalogPage';
import { CustomerPage } from './CustomerPage';
import { CustomersPage } from './CustomersPage';
import { DeadLetterPage } from './DeadLetterPage';
import { DeadLettersPage } from './DeadLettersPage';
import { PlansPage } from './PlansPage';
import { StatusPage } from './StatusPage';
import { ProductForm } from './ProductForm';
import { WebhooksPage } from './WebhooksPage';
import { href, screenTitle, useRoute, type Route } from './router';
import { sessionCheckFailure } from './sessionCheck';

type SessionState =
  | { readonly status: 'checking' }
  | { readonly status: 'unchecked'; readonly message: string }
  | { readonly status: 'signed-out'; readonly reason?: string }
  | { readonly status: 'signed-in'; readonly session: ConsoleSession };

/**
 * The operator console. Signing in exchanges an admin key for an HttpOnly session cookie; the
 * page never keeps the key. Writes carry the session's CSRF token, which lives in memory only
 * and is read again from the session after a reload.
 */
export function ConsoleApp() {
  const [state, setState] = useState<SessionState>({ status: 'checking' });
  const csrf = useRef<string | undefined>(undefined);
  const api = useMemo(
    () => createApiClient({ kind: 'session', csrfToken: () => csrf.current }, () => setState({ status: 'signed-out', reason: 'Your session has ended; sign in again.' })),
    [],
  );
  const [checks, setChecks] = useState(0);
  useEffect(() => {
    api
      .get<ConsoleSession>('/console-sessions/current')
      .then((session) => {
        csrf.current = session.csrfToken;
        setState({ status: 'signed-in', session });
      })
      .catch((failure: unknown) => {
        const outcome = sessionCheckFailure(failure);
        setState(outcome.signedOut ? { status: 'signed-out' } : { status: 'unchecked', message: outcome.message });
      });
  }, [api, checks]);

  if (state.status === 'checking') return <p class="loading">Loading…</p>;
  if (state.status === 'unchecked') {
    // A 429 or an outage says nothing about the session: the sign-in form would ask for a key needlessly.
    return (
      <main class="sign-in">
        <h1>Tally console</h1>
        <ErrorMessage message={state.message} />
        <button
          type="button"
          onClick={() => {
            setState({ status: 'checking' });
            setChecks((count) => count + 1);
          }}
        >
          Try again
        </button>
      </main>
    );
  }
  if (state.status === 'signed-out') {
    return (
      <SignIn
        api={api}
        reason={state.reason}
        onSignedIn={(session) => {
          csrf.current = session.csrfToken;
          setState({ status: 'signed-in', session });
        }}
      />
    );
  }
  return (
    <Shell
      api={api}
      session={state.session}
      onSignOut={async () => {
        // A sign-out that failed has not ended the session: the operator is told, and stays signed in
        // (a 401 means it had ended already, and the client's handler shows the sign-in form).
        await api.delete('/console-sessions/current');
        csrf.current = undefined;
        setState({ status: 'signed-out' });
      }}
    />
  );
}

function SignIn({ api, reason, onSignedIn }: { api: ApiClient; reason: string | undefined; onSignedIn: (session: ConsoleSession) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(reason);
  const [busy, busyWhile] = useBusyAction();
  useEffect(() => {
    document.title = 'Sign in – Tally console';
  }, []);
  return (
    <main class="sign-in">
      <h1>Tally console</h1>
      <form
        onSubmit={busyWhile(async (event) => {
          event.preventDefault();
          try {
            onSignedIn(await api.post<ConsoleSession>('/console-sessions', { body: { key } }));
          } catch (failure) {
            setError(failure instanceof ApiError && failure.status === 401 ? 'That API key is not valid.' : failure instanceof Error ? failure.message : String(failure));
          }
        })}
      >
        <Field label="API key" type="password" autoComplete="off" required value={key} onInput={(event) => setKey(event.currentTarget.value)} hint="An admin key, as `npm start` prints it." />
        <ErrorMessage message={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

const NAV: ReadonlyArray<{ label: string; route: Route; matches: ReadonlyArray<Route['screen']> }> = [
  { label: 'Customers', route: { screen: 'customers' }, matches: ['customers', 'customer'] },
  { label: 'Catalog', route: { screen: 'catalog' }, matches: ['catalog', 'product'] },
  { label: 'Plans', route: { screen: 'plans' }, matches: ['plans'] },
  { label: 'Webhooks', route: { screen: 'webhooks' }, matches: ['webhooks'] },
  { label: 'Dead letters', route: { screen: 'dead-letters' }, matches: ['dead-letters', 'dead-letter'] },
  { label: 'Status', route: { screen: 'status' }, matches: ['status'] },
];

function Shell({ api, session, onSignOut }: { api: ApiClient; session: ConsoleSession; onSignOut: () => Promise<void> }) {
  const route = useRoute();
  const [signOutError, setSignOutError] = useState<string | undefined>(undefined);
  const at = href(route);
  // A new screen replaces what had focus (the link clicked is often gone with its screen): focus
  // starts at the new screen's heading, and the window's title names it. Not on the first screen,
  // which the browser starts at the top of anyway. A layout effect, so focus is there before the
  // screen is painted: after paint, it would pull focus from a field the operator already chose.
  const first = useRef(true);
  useLayoutEffect(() => {
    document.title = `${screenTitle(route)} – Tally console`;
    if (first.current) first.current = false;
    else screenHeading()?.focus();
  }, [at]);
  return (
    <>
      <header class="top">
        <span class="brand">Tally console</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.label}>
                <a href={href(item.route)} aria-current={item.matches.includes(route.screen) ? 'page' : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <small class="signed-in-as">Signed in as {keyLabel({ keyId: session.key.id, keyName: session.key.name })}</small>
        <button
          type="button"
          class="secondary"
          onClick={() => {
            setSignOutError(undefined);
            onSignOut().catch((failure: unknown) => {
              // 401: the session had ended already, and the sign-in form replaces this screen.
              if (!(failure instanceof ApiError && failure.status === 401)) setSignOutError(`Not signed out: ${errorMessage(failure)}`);
            });
          }}
        >
          Sign out
        </button>
        <ErrorMessage message={signOutError} />
      </header>
      <main>
        {route.screen === 'catalog' && <CatalogPage api={api} />}
        {route.screen === 'product' && <ProductForm api={api} productId={route.productId} key={route.productId ?? 'new'} />}
        {route.screen === 'customers' && <CustomersPage api={api} />}
        {route.screen === 'customer' && <CustomerPage api={api} customerId={route.customerId} key={route.customerId} />}
        {route.screen === 'plans' && <PlansPage api={api} />}
        {route.screen === 'webhooks' && <WebhooksPage api={api} />}
        {route.screen === 'dead-letters' && <DeadLettersPage api={api} />}
        {route.screen === 'status' && <StatusPage api={api} />}
        {route.screen === 'dead-letter' && <DeadLetterPage api={api} partition={route.partition} offset={route.offset} key={`${route.partition}:${route.offset}`} />}
      </main>
    </>
  );
}
