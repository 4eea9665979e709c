import { href, parseRoute, screenTitle, type Route } from './route';

describe("the console's routes", () => {
  it('reads every screen back from the link it makes', () => {
    const routes: Route[] = [
      { screen: 'catalog' },
      { screen: 'product', productId: null },
      { screen: 'product', productId: 'api credits/β' },
      { screen: 'customers' },
      { screen: 'customer', customerId: 'cus 4711/x' },
      { screen: 'plans' },
      { screen: 'webhooks' },
      { screen: 'dead-letters' },
      { screen: 'dead-letter', partition: 2, offset: '123456789012345678' },
      { screen: 'status' },
    ];
    for (const route of routes) expect(parseRoute(href(route))).toEqual(route);
  });

  it('opens a dead letter only at a place that is one, else the list', () => {
    expect(parseRoute('#/dead-letters/0/17')).toEqual({ screen: 'dead-letter', partition: 0, offset: '17' });
    for (const hash of ['#/dead-letters/0', '#/dead-letters/x/1', '#/dead-letters/0/-1', '#/dead-letters/0/1.5', '#/dead-letters/0/1234567890123456789', '#/dead-letters/1234567890/0']) {
      expect({ hash, route: parseRoute(hash) }).toEqual({ hash, route: { screen: 'dead-letters' } });
    }
  });

  it('opens the list of the section for a part that is not percent-encoding, never throwing (a blank page)', () => {
    expect(parseRoute('#/customers/100%')).toEqual({ screen: 'customers' });
    expect(parseRoute('#/customers/%E0%A4%A')).toEqual({ screen: 'customers' });
    expect(parseRoute('#/catalog/%ZZ')).toEqual({ screen: 'catalog' });
    expect(parseRoute('#/dead-letters/%/1')).toEqual({ screen: 'dead-letters' });
    expect(parseRoute('#/%')).toEqual({ screen: 'customers' });
    // Encoded as href encodes it, the same characters open the customer.
    expect(parseRoute('#/customers/100%25')).toEqual({ screen: 'customer', customerId: '100%' });
  });

  it('names each screen for the window title, by what it shows', () => {
    expect(screenTitle(parseRoute('#/customers/cus%204711'))).toBe('Customer cus 4711');
    expect(screenTitle(parseRoute('#/catalog/new'))).toBe('New credit product');
    expect(screenTitle(parseRoute('#/catalog/api-credits'))).toBe('Credit product api-credits');
    expect(screenTitle(parseRoute('#/dead-letters/2/17'))).toBe('Dead letter 2@17');
    expect(screenTitle(parseRoute(''))).toBe('Customers');
  });
});
