/** The console's screens live in the URL's fragment (#/customers/acme): no server routes, and the back button works. */
export type Route =
  | { readonly screen: 'catalog' }
  | { readonly screen: 'product'; readonly productId: string | null }
  | { readonly screen: 'customers' }
  | { readonly screen: 'customer'; readonly customerId: string }
  | { readonly screen: 'plans' }
  | { readonly screen: 'webhooks' }
  | { readonly screen: 'dead-letters' }
  | { readonly screen: 'dead-letter'; readonly partition: number; readonly offset: string }
  | { readonly screen: 'status' };

/**
 * A part that is not percent-encoding (a hand-typed `100%`) reads as absent, so the section's list
 * opens: decodeURIComponent's URIError would otherwise leave a blank page, or the previous screen.
 */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return '';
  }
}

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodePart);
  switch (parts[0]) {
    case 'catalog':
      if (parts[1] === 'new') return { screen: 'product', productId: null };
      return parts[1] !== undefined && parts[1] !== '' ? { screen: 'product', productId: parts[1] } : { screen: 'catalog' };
    case 'customers':
      return parts[1] !== undefined && parts[1] !== '' ? { screen: 'customer', customerId: parts[1] } : { screen: 'customers' };
    case 'plans':
      return { screen: 'plans' };
    case 'webhooks':
      return { screen: 'webhooks' };
    case 'dead-letters':
      // A letter by where it sits on the dead-letter topic, spelled as @tally/metering's
      // deadLetterPlace.ts spells it (that package does not go into the browser); anything else is the list.
      if (/^(0|[1-9][0-9]{0,8})$/.test(parts[1] ?? '') && /^(0|[1-9][0-9]{0,17})$/.test(parts[2] ?? '')) return { screen: 'dead-letter', partition: Number(parts[1]), offset: parts[2]! };
      return { screen: 'dead-letters' };
    case 'status':
      return { screen: 'status' };
    default:
      return { screen: 'customers' };
  }
}

export function href(route: Route): string {
  switch (route.screen) {
    case 'catalog':
      return '#/catalog';
    case 'product':
      return route.productId === null ? '#/catalog/new' : `#/catalog/${encodeURIComponent(route.productId)}`;
    case 'customers':
      return '#/customers';
    case 'customer':
      return `#/customers/${encodeURIComponent(route.customerId)}`;
    case 'plans':
      return '#/plans';
    case 'webhooks':
      return '#/webhooks';
    case 'dead-letters':
      return '#/dead-letters';
    case 'dead-letter':
      return `#/dead-letters/${route.partition}/${encodeURIComponent(route.offset)}`;
    case 'status':
      return '#/status';
  }
}

/** What the screen is, for the window's title (its h1 may say more once its data is read). */
export function screenTitle(route: Route): string {
  switch (route.screen) {
    case 'catalog':
      return 'Catalog';
    case 'product':
      return route.productId === null ? 'New credit product' : `Credit product ${route.productId}`;
    case 'customers':
      return 'Customers';
    case 'customer':
      return `Customer ${route.customerId}`;
    case 'plans':
      return 'Plans';
    case 'webhooks':
      return 'Webhooks';
    case 'dead-letters':
      return 'Dead letters';
    case 'dead-letter':
      return `Dead letter ${route.partition}@${route.offset}`;
    case 'status':
      return 'Status';
  }
}
