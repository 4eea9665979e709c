import { useEffect, useState } from 'preact/hooks';
import { href, parseRoute, type Route } from './route';

// The routes themselves live apart from the hooks, so that their unit tests load no Preact.
export { href, parseRoute, screenTitle, type Route } from './route';

/**
 * What a screen tells the screen it goes to, beside the route: the product it just created, whose
 * form then says it is saved. It rides on the history entry the navigation makes, so it reaches
 * that screen in that window alone, and it is read once (takeNote): reloaded or come back to, the
 * entry has none.
 */
export interface NavigationNote {
  readonly created?: string;
}

export function navigate(route: Route, note?: NavigationNote): void {
  window.location.hash = href(route);
  // Going to a fragment makes its history entry at once (hashchange comes after): the note is on
  // the new entry before the screen it opens renders.
  if (note !== undefined) window.history.replaceState({ note }, '');
}

/** The note the navigation to this entry brought, if any; taken off the entry as it is read. */
export function takeNote(): NavigationNote | undefined {
  const state: unknown = window.history.state;
  if (typeof state !== 'object' || state === null || !('note' in state)) return undefined;
  window.history.replaceState(null, '');
  return state.note as NavigationNote;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
