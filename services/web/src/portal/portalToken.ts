const STORAGE_KEY = 'tally.portal.token';

/**
 * The portal link carries its token in the URL's fragment (never sent to a server, never in
 * logs): it is taken from there once, kept for this tab only (sessionStorage, so a reload works)
 * and removed from the address bar, so that a copied URL or a screenshot does not carry it.
 */
export function takePortalToken(): string | undefined {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const fromLink = fragment.get('token');
  if (fromLink !== null && fromLink !== '') {
    sessionStorage.setItem(STORAGE_KEY, fromLink);
    history.replaceState(null, '', window.location.pathname);
    return fromLink;
  }
  return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
}

/**
 * Whom the token names, for building the page's requests. Read, not verified: the API verifies
 * the signature on every request and admits this customer alone whatever the page believes.
 */
export function tokenCustomer(token: string): { customerId: string; expiresAt: Date } | undefined {
  try {
    // atob gives one character per byte: the JSON is UTF-8, so a customer id beyond ASCII
    // (müller) is decoded from the bytes, or the page would ask for another customer (403).
    const bytes = Uint8Array.from(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')), (char) => char.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as { sub?: unknown; exp?: unknown };
    if (typeof payload.sub !== 'string' || typeof payload.exp !== 'number') return undefined;
    return { customerId: payload.sub, expiresAt: new Date(payload.exp * 1000) };
  } catch {
    return undefined;
  }
}
