import { useEffect, useState } from 'preact/hooks';
import { href, parseRoute, type Route } from './route';

// The routes themselves live apart from the hooks, so that their unit tests load no Preact.
export { href, parseRoute, screenTitle, type Route } from './route';

export function navigate(route: Route): void {
  window.location.hash = href(route);
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
